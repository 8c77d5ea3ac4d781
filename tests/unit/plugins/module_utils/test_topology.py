"""The decision core: tables of node facts -> plan or refusal."""
import datetime
import re

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import topology as topology_module
from ansible_collections.pgha.cluster.plugins.module_utils.topology import (
    Refusal, cluster_state, deploy_primary, plan_failover, rank_candidates, rebuild_need)

from collection_path import REPO

SYSID = "7441000000000000001"


def primary(lsn=100, tl=1, replication=()):
    return {"reachable": True, "in_recovery": False, "timeline": tl, "received_lsn_bytes": lsn,
            "system_identifier": SYSID, "replication": list(replication)}


def standby(lsn=100, tl=1, sysid=SYSID):
    return {"reachable": True, "in_recovery": True, "timeline": tl, "received_lsn_bytes": lsn,
            "system_identifier": sysid, "replication": []}


def down():
    return {"reachable": False, "reason": "connection refused"}


def test_state_healthy_split_and_none():
    assert cluster_state({"a": primary(), "b": standby()})["state"] == "healthy"
    assert cluster_state({"a": primary(), "b": primary()})["state"] == "split_brain"
    state = cluster_state({"a": down(), "b": standby()})
    assert (state["state"], state["unreachable"]) == ("no_primary", ["a"])


def test_promotes_standby_with_most_wal_not_lowest_id():
    nodes = {"pg1": down(), "pg2": standby(lsn=500), "pg3": standby(lsn=900)}
    plan = plan_failover(nodes, failed_node="pg1")
    assert plan == {"action": "promote", "candidate": "pg3", "fence": ["pg1"], "follow": ["pg2"]}


def test_timeline_beats_lsn():
    nodes = {"pg1": down(), "pg2": standby(lsn=10, tl=3), "pg3": standby(lsn=900, tl=2)}
    assert plan_failover(nodes)["candidate"] == "pg2"


def test_sync_standby_wins_a_tie():
    nodes = {"pg1": down(), "pg2": standby(lsn=500), "pg3": standby(lsn=500)}
    assert plan_failover(nodes, sync_names={"pg3"})["candidate"] == "pg3"
    assert rank_candidates(nodes, {"pg2"})[0] == "pg2"


def test_refuses_while_primary_is_healthy():
    nodes = {"pg1": primary(), "pg2": standby(), "pg3": standby()}
    with pytest.raises(Refusal, match="still a reachable, healthy primary"):
        plan_failover(nodes, failed_node="pg1")


def test_forced_failover_fences_the_live_primary():
    nodes = {"pg1": primary(lsn=100), "pg2": standby(lsn=100), "pg3": standby(lsn=90)}
    plan = plan_failover(nodes, failed_node="pg1", force=True)
    assert (plan["candidate"], plan["fence"]) == ("pg2", ["pg1"])


def test_rerun_after_success_changes_nothing():
    nodes = {"pg1": down(), "pg2": primary(tl=2), "pg3": standby(tl=2)}
    plan = plan_failover(nodes, failed_node="pg1")
    assert plan["action"] == "none" and plan["primary"] == "pg2"


def test_refuses_without_reachable_standby():
    with pytest.raises(Refusal, match="no reachable standby"):
        plan_failover({"pg1": down(), "pg2": down()})


def test_refuses_unknown_failed_node():
    with pytest.raises(Refusal, match="unknown failed_node 'pg9'"):
        plan_failover({"pg1": down(), "pg2": standby()}, failed_node="pg9")


def test_refuses_candidate_behind_another_standby():
    nodes = {"pg1": down(), "pg2": standby(lsn=500), "pg3": standby(lsn=900)}
    with pytest.raises(Refusal, match="candidate pg2 is behind pg3"):
        plan_failover(nodes, candidate="pg2")
    assert plan_failover(nodes, candidate="pg3")["candidate"] == "pg3"


def test_refuses_mismatched_system_identifier():
    nodes = {"pg1": down(), "pg2": standby(), "pg3": standby(sysid="999")}
    with pytest.raises(Refusal, match="system identifier"):
        plan_failover(nodes)


def test_refuses_two_primaries():
    with pytest.raises(Refusal, match="two primaries"):
        plan_failover({"pg1": primary(), "pg2": primary(), "pg3": standby()})


def test_unreachable_nodes_are_fenced_when_failed_node_unknown():
    nodes = {"pg1": down(), "pg2": standby(lsn=5), "pg3": down()}
    plan = plan_failover(nodes)
    assert plan["fence"] == ["pg1", "pg3"] and plan["candidate"] == "pg2"


def streaming_standby(host="10.0.0.1", timeline=2, status="streaming"):
    return {"reachable": True, "in_recovery": True, "timeline": timeline, "primary_conninfo_host": host,
            "wal_receiver": {"status": status} if status else None}


@pytest.mark.parametrize("target, needed, reason", [
    (streaming_standby(), False, "already streams from the primary on timeline 2"),
    (streaming_standby(host="10.0.0.3"), True, "streams from 10.0.0.3"),
    (streaming_standby(timeline=1), True, "timeline 1, the primary on 2"),
    (streaming_standby(status=None), True, "WAL receiver is not running"),
    (streaming_standby(status="waiting"), True, "WAL receiver is waiting"),
    ({"reachable": True, "in_recovery": False, "timeline": 1}, True, "runs as a primary"),
    ({"reachable": False, "reason": "connection refused"}, True, "does not answer (connection refused)"),
])
def test_rebuild_is_needed_unless_the_node_streams_from_the_primary(target, needed, reason):
    decision = rebuild_need(target, {"timeline": 2}, "10.0.0.1")
    assert decision["needed"] is needed and reason in decision["reason"]


@pytest.mark.parametrize("target, refused", [
    ({"reachable": False, "stopped_timeline": 3}, True),     # promoted after the primary, stopped
    ({"reachable": True, "in_recovery": False, "timeline": 3}, True),
    ({"reachable": False, "stopped_timeline": 2}, False),    # the old primary of a normal failover
    ({"reachable": False, "stopped_timeline": 1}, False),
    ({"reachable": False}, False),                           # nothing read: rebuild.yml's own checks
    (streaming_standby(), False),
])
def test_a_target_on_a_newer_timeline_than_the_primary_is_not_rebuilt_from_it(target, refused):
    decision = rebuild_need(target, {"timeline": 2}, "10.0.0.1")
    assert (decision["refusal"] is not None) is refused, decision
    if refused:
        assert "timeline 3, newer than the primary's timeline 2" in decision["refusal"]
        assert "force=true" in decision["refusal"]


def deploy_node(has_data=True, role=None, fenced=False):
    return {"has_data": has_data, "facts": {"role": role, "fence_lock_present": fenced} if has_data else None}


@pytest.mark.parametrize("nodes, primary, refusal", [
    ({"a": deploy_node(False), "b": deploy_node(False)}, "a", None),
    ({"a": deploy_node(role="standby"), "b": deploy_node(role="primary")}, "b", None),
    ({"a": deploy_node(role="primary"), "b": deploy_node(role="primary")}, "", "two primaries are running (a, b)"),
    ({"a": deploy_node(role="unknown"), "b": deploy_node(role="standby")}, "", "no primary is running"),
    ({"a": deploy_node(role="unknown", fenced=True), "b": deploy_node(role="primary")}, "b", "a is fenced"),
    ({"a": deploy_node(False), "b": deploy_node(role="primary")}, "b", None),
])
def test_deploy_primary(nodes, primary, refusal):
    decision = deploy_primary(nodes, "a")
    assert decision["primary"] == primary
    assert (decision["refusal"] is None) if refusal is None else (refusal in decision["refusal"])


def service_node(role=None, standby_signal=True, fence_lock=False):
    return {"role": role, "standby_signal": standby_signal, "fence_lock": fence_lock}


@pytest.mark.parametrize("nodes, primary, refusal", [
    ({"a": service_node("primary", False), "b": service_node("standby")}, "a", None),
    ({"a": service_node(None, False), "b": service_node(None)}, "a", None),
    ({"a": service_node(None, False, True), "b": service_node(None)}, "", None),
    ({"a": service_node(None, False), "b": service_node(None, False)}, "a", "a and b would both start"),
    ({"a": service_node("primary", False), "b": service_node("primary", False)}, "a", "a and b run"),
    ({"a": service_node("primary", False), "b": service_node(None, False)}, "a", None),
])
def test_service_plan(nodes, primary, refusal):
    plan = topology_module.service_plan(nodes)
    assert plan["primary"] == primary
    assert (plan["refusal"] is None) if refusal is None else (refusal in plan["refusal"])


@pytest.mark.parametrize("roles, target, primary, refusal", [
    ({"a": "primary", "b": "unknown"}, "b", "a", None),
    ({"a": "primary", "b": "standby"}, "a", "a", "it is the current primary"),
    ({"a": "unknown", "b": "standby"}, "b", "", "found: none"),
    ({"a": "primary", "b": "primary", "c": "standby"}, "c", "", "found: a, b"),
])
def test_rebuild_source(roles, target, primary, refusal):
    source = topology_module.rebuild_source(roles, target)
    assert source["primary"] == primary
    assert (source["refusal"] is None) if refusal is None else (refusal in source["refusal"])


# Facts read from the servers compared with 'primary' (the inventory's pgha_role is intent, not a fact).
DECIDING = re.compile(r"(?<!pgha_role)', 'equalto', 'primary'|(?<!pgha_)role[^ ]* *== *'primary'|"
                      r"in_recovery[^ ]* *(==|is) *(false|False)")


def test_no_jinja_in_roles_or_playbooks_decides_which_node_is_primary():
    """Such decisions call a filter (plugins/filter) or read a module's result."""
    offending = []
    for path in sorted(list((REPO / "roles").rglob("*.yml")) + list((REPO / "roles").rglob("*.j2"))
                       + list((REPO / "playbooks").glob("*.yml"))):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if DECIDING.search(line) and "until:" not in line:
                offending.append("%s:%d: %s" % (path.relative_to(REPO), number, line.strip()))
    assert not offending, "\n".join(offending)


@pytest.mark.parametrize("facts, state, acking", [
    ({"synchronous_standby_names": "ANY 1 (pg2, pg3)",
      "replication": [{"application_name": "pg2", "sync_state": "quorum"},
                      {"application_name": "pg3", "sync_state": "potential"}]}, "synchronous", ["pg2"]),
    ({"synchronous_standby_names": "ANY 1 (pg2, pg3)", "replication": []}, "writes_wait", []),
    ({"synchronous_standby_names": "", "replication": [{"application_name": "pg2", "sync_state": "async"}]},
     "asynchronous", []),
])
def test_a_primary_s_synchronous_replication_as_status_reports_it(facts, state, acking):
    found = cluster_state({"a": dict(primary(), **facts), "b": standby()})["sync"]["a"]
    assert found == {"state": state, "acking": acking}


FOLLOWING_B = {"reachable": True, "in_recovery": True, "follows": "b"}


@pytest.mark.parametrize("nodes, failed", [
    ({"a": {"reachable": False}, "b": {"reachable": False}, "c": FOLLOWING_B, "d": FOLLOWING_B}, "b"),
    ({"b": {"reachable": True, "in_recovery": True}, "c": FOLLOWING_B}, None),       # b answers (a standby)
    ({"b": {"reachable": True, "in_recovery": False}, "c": FOLLOWING_B}, None),      # b answers as primary
    ({"b": {"reachable": False}, "c": FOLLOWING_B, "d": dict(FOLLOWING_B, follows="a")}, None),   # they disagree
    ({"b": {"reachable": False}, "c": dict(FOLLOWING_B, follows=None)}, None),       # follows nobody
    ({"b": {"reachable": False}, "c": {"reachable": False}}, None),                  # no standby answers
])
def test_followed_primary_names_the_failed_primary_the_standbys_agree_on(nodes, failed):
    assert topology_module.followed_primary(nodes) == failed


# --- the rebuild's retention of copies kept aside ---------------------------------------------

ASIDE = "/var/lib/postgresql/15/main.pgha-"


def test_a_copy_moved_aside_now_is_kept_although_its_files_are_old():
    paths = [ASIDE + "20261207T120000", ASIDE + "20261207T120000-wal"]
    assert topology_module.aside_to_prune(paths, ASIDE, 1, 7, datetime.datetime(2026, 12, 7, 12, 1)) == []


def test_retention_counts_rebuilds_not_directories_and_needs_both_limits():
    paths = [ASIDE + stamp for stamp in ("20261101T000000", "20261101T000000-wal", "20261110T000000",
                                         "20261205T000000", "20261206T000000-wal", "20261206T000000")]
    now = datetime.datetime(2026, 12, 7)
    assert topology_module.aside_to_prune(paths, ASIDE, 2, 7, now) == [
        ASIDE + "20261101T000000", ASIDE + "20261101T000000-wal", ASIDE + "20261110T000000"]
    oldest = [ASIDE + "20261101T000000", ASIDE + "20261101T000000-wal"]
    assert topology_module.aside_to_prune(paths, ASIDE, 3, 7, now) == oldest
    assert topology_module.aside_to_prune(paths, ASIDE, 2, 30, now) == oldest


def test_a_name_without_a_stamp_is_never_removed_and_an_aware_now_works():
    paths = [ASIDE + "manual-copy", ASIDE + "20200101T000000", "/elsewhere/main.pgha-20200101T000000"]
    now = datetime.datetime(2026, 12, 7, tzinfo=datetime.timezone.utc)
    assert topology_module.aside_to_prune(paths, ASIDE, 0, 1, now) == [ASIDE + "20200101T000000"]
