"""The decision core: tables of node facts -> plan or refusal."""
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils.topology import (
    Refusal, cluster_state, plan_failover, rank_candidates, rebuild_need)

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
