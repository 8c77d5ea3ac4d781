"""Each module against real PostgreSQL and pgpool-II in the lab."""
import time

import pytest

from cluster_probe import pool_attached, primaries, survey, wait_for
from conftest import report

PG_FACTS = "pgha.cluster.pg_node_info"
POOL_INFO = "pgha.cluster.pgpool_node_info"


@pytest.fixture()
def roles(lab):
    """The current primary and standbys, read from the servers (never assumed)."""
    found = primaries(survey(lab))
    assert len(found) == 1, "the lab must have one primary, found %s" % found
    return found[0], sorted(n for n in lab["nodes"] if n != found[0])


def pcp_args(lab, **extra):
    args = {"source": "pcp", "pcp_host": "localhost", "pcp_user": "pgha_pcp",
            "pcp_password": lab["pgha_pcp_password"]}
    args.update(extra)
    return args


def test_pg_node_info_primary_and_standbys(ansible, lab, roles):
    primary_name, standby_names = roles
    started = time.time()
    # Standbys first: the primary's WAL position only grows, so it must be >= what they received.
    facts = {name: ansible.module(name, PG_FACTS, {}, become_postgres=True)[0]
             for name in standby_names + [primary_name]}
    report("timings.txt", "pg_node_info over 3 nodes (sequential ansible calls): %.2f s" % (time.time() - started))
    primary, standbys = facts[primary_name], [facts[n] for n in standby_names]
    assert primary["reachable"] and primary["in_recovery"] is False and primary["role"] == "primary"
    assert primary["timeline"] >= 1 and primary["current_lsn_bytes"] > 0
    assert {r["application_name"] for r in primary["replication"]} == set(standby_names)
    assert set(standby_names) <= {s["slot_name"] for s in primary["replication_slots"]}
    assert primary["fence_lock_present"] is False
    for standby in standbys:
        assert standby["in_recovery"] is True and standby["role"] == "standby"
        assert standby["wal_receiver"]["status"] == "streaming"
        assert standby["wal_receiver"]["sender_host"] == lab["nodes"][primary_name]
        assert standby["timeline"] == primary["timeline"]
        assert standby["received_lsn_bytes"] <= primary["current_lsn_bytes"]
    assert len({f["system_identifier"] for f in facts.values()}) == 1


def test_pg_node_info_one_call_surveys_three_nodes(ansible, lab, roles):
    # The way a failover surveys: one task over every node in parallel.
    started = time.time()
    results, _ = ansible.modules("pgha_postgresql", PG_FACTS, {"fail_on_unreachable": False}, become_postgres=True)
    elapsed = time.time() - started
    assert sorted(results) == ["pg1", "pg2", "pg3"]
    assert [results[n]["role"] for n in [roles[0]] + roles[1]] == ["primary", "standby", "standby"]
    report("timings.txt", "pg_node_info, one ad-hoc call over 3 nodes: %.2f s" % elapsed)


def test_pg_node_info_unreachable_is_reported(ansible, lab):
    args = {"login_host": "10.89.50.250", "connect_timeout": 2, "fail_on_unreachable": False}
    result, _ = ansible.module("pg1", PG_FACTS, args)
    assert result["reachable"] is False and "cannot connect" in result["reason"]
    assert not result.get("failed")
    args["fail_on_unreachable"] = True
    result, _ = ansible.module("pg1", PG_FACTS, args)
    assert result["failed"] and "10.89.50.250" in result["msg"]


def test_wrong_password_fails_clearly_without_leaking(ansible, lab):
    secret = "Wr0ng-" + str(time.time())
    args = {"login_host": lab["nodes"]["pg2"], "login_user": "pgha_admin", "login_password": secret}
    result, raw = ansible.module("pg1", PG_FACTS, args)
    assert result["failed"] and "password authentication failed" in result["msg"]
    assert secret not in raw


def test_pgpool_node_info_sql_pcp_and_watchdog(ansible, lab, roles):
    sql_args = {"login_host": lab["vip"], "login_user": "pgha_admin", "login_password": lab["pgha_admin_password"]}
    started = time.time()
    sql, _ = ansible.module("pg1", POOL_INFO, sql_args)
    report("timings.txt", "pgpool_node_info (SHOW pool_nodes via VIP): %.2f s" % (time.time() - started))
    assert [n["node_id"] for n in sql["nodes"]] == [0, 1, 2]
    assert sql["primary_node_id"] == sorted(lab["nodes"]).index(roles[0]) and sql["disagreements"] == []
    assert isinstance(sql["nodes"][0]["lb_weight"], float) and sql["nodes"][1]["port"] == 5432
    pcp, _ = ansible.module("pg1", POOL_INFO, pcp_args(lab, watchdog=True))
    assert [(n["node_id"], n["role"]) for n in pcp["nodes"]] == [(n["node_id"], n["role"]) for n in sql["nodes"]]
    assert pcp["watchdog"]["enabled"] is True and pcp["watchdog"]["quorum"] is True
    assert pcp["watchdog"]["leader"] in lab["nodes"].values()
    assert len(pcp["watchdog"]["nodes"]) == 3


def test_pgpool_node_info_wrong_pcp_password(ansible, lab):
    secret = "bad-pcp-" + str(time.time())
    result, raw = ansible.module("pg1", POOL_INFO, pcp_args(lab, pcp_password=secret))
    assert result["failed"] and "pcp_node_info failed" in result["msg"]
    assert secret not in raw


def test_pgpool_node_detach_then_the_hook_attaches_the_streaming_standby_again(ansible, lab, roles):
    """Detaching a standby runs pgpool's failover_command: pgha's hook attaches a standby that
    still streams from the primary again by itself, after which attaching is a no-op.
    (Repeated detaches race with that hook; their idempotence is a unit test.)"""
    standby = roles[1][-1]
    args = pcp_args(lab, node_id=sorted(lab["nodes"]).index(standby))
    del args["source"]
    detach = dict(args, state="detached")
    attach = dict(args, state="attached")
    try:
        checked, _ = ansible.module("pg1", "pgha.cluster.pgpool_node", detach, check=True)
        assert checked["changed"] and checked["node"]["status"] in ("up", "waiting")
        done, _ = ansible.module("pg1", "pgha.cluster.pgpool_node", detach)
        assert done["changed"] and done["node"]["status"] == "down"
        assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 60), "the hook did not attach %s again" % standby
    finally:
        ansible.module("pg1", "pgha.cluster.pgpool_node", attach)
    assert not ansible.module("pg1", "pgha.cluster.pgpool_node", attach)[0]["changed"]


def test_pg_promote_refusals_and_noop(ansible, lab, roles):
    primary_name, (standby_name, _) = roles
    primary, _ = ansible.module(primary_name, "pgha.cluster.pg_promote", {}, become_postgres=True)
    assert not primary.get("failed") and primary["changed"] is False
    # A standby that streams from a live primary is never promoted: that would be split brain.
    streaming, _ = ansible.module(standby_name, "pgha.cluster.pg_promote", {}, become_postgres=True)
    assert streaming["failed"] and "still streams from %s" % lab["nodes"][primary_name] in streaming["msg"]
    checked, _ = ansible.module(standby_name, "pgha.cluster.pg_promote", {"allow_streaming": True},
                                become_postgres=True, check=True)
    assert checked["changed"] and checked["diff"]["after"]["role"] == "primary"
    wrong, _ = ansible.module(standby_name, "pgha.cluster.pg_promote",
                              {"expected_system_identifier": "1", "allow_streaming": True}, become_postgres=True)
    assert wrong["failed"] and "system identifier" in wrong["msg"]
    assert ansible.module(standby_name, PG_FACTS, {}, become_postgres=True)[0]["in_recovery"] is True
    assert primaries(survey(lab)) == [primary_name]


def switchover_args(lab, target):
    return {"login_host": lab["nodes"][target], "login_user": "pgha_admin", "login_password": lab["pgha_admin_password"],
            "service": "postgresql@15-main", "data_directory": "/var/lib/postgresql/15/main",
            "bin_directory": "/usr/lib/postgresql/15/bin", "timeout": 5}


def test_pg_switchover_refusals_and_check_mode(ansible, lab, roles):
    primary_name, (standby_name, other_name) = roles
    from_standby, _ = ansible.module(standby_name, "pgha.cluster.pg_switchover", switchover_args(lab, other_name))
    assert from_standby["failed"] and "refused, nothing changed: the local server is not a running primary" \
        in from_standby["msg"]
    to_primary, _ = ansible.module(primary_name, "pgha.cluster.pg_switchover", switchover_args(lab, primary_name))
    assert to_primary["failed"] and "the target is not a streaming standby" in to_primary["msg"]
    wrong = dict(switchover_args(lab, standby_name), login_password="not-the-password")
    denied, raw = ansible.module(primary_name, "pgha.cluster.pg_switchover", wrong)
    assert denied["failed"] and denied["msg"].startswith("refused, nothing changed") and "not-the-password" not in raw
    checked, _ = ansible.module(primary_name, "pgha.cluster.pg_switchover", switchover_args(lab, standby_name),
                                check=True)
    assert not checked.get("failed") and checked["changed"] is True
    assert primaries(survey(lab)) == [primary_name]
    assert ansible.module(standby_name, PG_FACTS, {}, become_postgres=True)[0]["in_recovery"] is True


@pytest.mark.parametrize("check", [True, False])
def test_pg_user_create_then_idempotent(ansible, lab, roles, check):
    args = {"name": "pgha_it_user", "password": "it-secret-password", "member_of": ["pg_monitor"]}
    first, raw = ansible.module(roles[0], "pgha.cluster.pg_user", args, become_postgres=True, check=check)
    assert "it-secret-password" not in raw
    if check:
        assert first["changed"] or first["executed_queries"] == []
        return
    second, _ = ansible.module(roles[0], "pgha.cluster.pg_user", args, become_postgres=True)
    assert second["changed"] is False and second["executed_queries"] == []
    changed_pw, _ = ansible.module(roles[0], "pgha.cluster.pg_user", dict(args, password="another-password"),
                                   become_postgres=True)
    assert changed_pw["changed"] and "'********'" in changed_pw["executed_queries"][0]


@pytest.mark.parametrize("password", ["\uff50\uff41\uff53\uff53-fullwidth", "pass\u00a0word \u2168 I\u00adX"],
                         ids=["fullwidth", "nbsp-roman-softhyphen"])
def test_pg_user_non_ascii_password_logs_in(ansible, lab, roles, password):
    """SASLprep (RFC 4013, as libpq and the server apply it): the verifier pg_user computes
    matches what the client sends, so the role logs in, and a second run changes nothing."""
    import psycopg2
    args = {"name": "pgha_it_sasl", "password": password}
    first, raw = ansible.module(roles[0], "pgha.cluster.pg_user", args, become_postgres=True)
    assert not first.get("failed"), first
    assert password not in raw
    second, _ = ansible.module(roles[0], "pgha.cluster.pg_user", args, become_postgres=True)
    assert second["changed"] is False, "pg_user reports a change for an unchanged non-ASCII password"
    conn = psycopg2.connect(host=lab["nodes"][roles[0]], port=5432, user="pgha_it_sasl", password=password,
                            dbname="postgres", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user")
            assert cur.fetchone()[0] == "pgha_it_sasl"
    finally:
        conn.close()
