"""Unsafe requests are refused with a clear message and change nothing."""
import time

from cluster_probe import (KillPostmaster, check_no_acked_row_lost, followers_ok, lab_exec, node_sql, pool_attached,
                           primaries, survey, wait_for)
from conftest import outcome

MAINTENANCE = "/var/lib/pgha/maintenance"


def roles(lab):
    return dict((name, (node["role"], node.get("timeline"))) for name, node in survey(lab).items())


def primary_of(state):
    return [name for name, (role, _) in state.items() if role == "primary"][0]


def assert_refused(result, text):
    assert result.returncode != 0, "expected a refusal, the playbook succeeded"
    assert text in result.stdout, outcome(result)


def test_failover_refused_while_primary_is_healthy(ansible, lab):
    before = roles(lab)
    result = ansible.playbook("pgha.cluster.failover", "-e", "failed_node=%s" % primary_of(before))
    assert_refused(result, "still a reachable, healthy primary")
    assert roles(lab) == before


def test_failover_refuses_unknown_failed_node(ansible, lab):
    before = roles(lab)
    assert_refused(ansible.playbook("pgha.cluster.failover", "-e", "failed_node=pg9"), "unknown failed_node 'pg9'")
    assert roles(lab) == before


def test_failover_without_failure_changes_nothing(ansible, lab):
    before = roles(lab)
    result = ansible.playbook("pgha.cluster.failover")
    assert result.returncode == 0, outcome(result)
    assert "Nothing to do" in result.stdout
    assert roles(lab) == before


LOCK = "/var/lib/pgha/operation.lock"


def test_a_leaked_lock_refuses_until_broken_by_name(ansible, lab):
    """A run that died leaves its lock: the next run is refused, naming the holder;
    -e break_lock=true says whose lock it breaks, runs, and leaves no lock behind."""
    before = roles(lab)
    for node in lab["nodes"]:
        lab_exec(node, "mkdir -p %s && echo 'failover by ghost on gone-host' > %s/holder" % (LOCK, LOCK))
    try:
        for playbook, args in (("failover", ()), ("rebuild", ("-e", "target=%s" % sorted(lab["nodes"])[-1])),
                               ("follow_primary", ())):
            assert_refused(ansible.playbook("pgha.cluster." + playbook, *args),
                           "another operation holds the cluster lock (failover by ghost on gone-host)")
        result = ansible.playbook("pgha.cluster.failover", "-e", "break_lock=true")
        assert result.returncode == 0, outcome(result)
        assert "broke the cluster lock of: failover by ghost on gone-host" in result.stdout
        assert "Nothing to do" in result.stdout
    finally:
        for node in lab["nodes"]:
            lab_exec(node, "rm -rf %s" % LOCK)
    assert roles(lab) == before


def no_lock_left(lab):
    return [node for node in lab["nodes"] if lab_exec(node, "test -e %s" % LOCK).returncode == 0] == []


def test_rebuild_of_the_primary_is_refused(ansible, lab):
    before = roles(lab)
    assert_refused(ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % primary_of(before)),
                   "it is the current primary")
    assert roles(lab) == before
    assert no_lock_left(lab), "the refused rebuild left the cluster lock behind"


def test_rebuild_needs_a_known_target(ansible, lab):
    assert_refused(ansible.playbook("pgha.cluster.rebuild", "-e", "target=nope"), "pass -e target=NODE")


def test_follow_primary_on_a_healthy_cluster_is_idempotent(ansible, lab):
    before = roles(lab)
    result = ansible.playbook("pgha.cluster.follow_primary")
    assert result.returncode == 0, outcome(result)
    assert "OK: one primary" in result.stdout
    assert roles(lab) == before


def test_failover_refused_without_a_reachable_standby(ansible, lab, healthy_cluster):
    primary = healthy_cluster
    stop = ansible.playbook("pgha.cluster.stop")
    assert stop.returncode == 0, outcome(stop)
    try:
        before = roles(lab)
        assert_refused(ansible.playbook("pgha.cluster.failover", "-e", "failed_node=%s" % primary),
                       "no reachable standby to promote")
        assert roles(lab) == before
        for node in lab["nodes"]:
            assert lab_exec(node, "test -e /var/lib/pgha/fenced").returncode != 0, "a refused failover fenced %s" % node
        dry = ansible.playbook("pgha.cluster.start", "--check")
        assert dry.returncode == 0, outcome(dry)
        assert roles(lab) == before and no_lock_left(lab), "start --check started a server or left its lock"
    finally:
        start = ansible.playbook("pgha.cluster.start")
    assert start.returncode == 0, outcome(start)
    assert primaries(survey(lab)) == [primary]


def test_failover_refuses_a_candidate_behind_another_standby(ansible, lab, healthy_cluster):
    """One standby stops receiving WAL, rows are committed (the other standby acknowledges),
    the primary dies with pgpool's hook paused: promoting the lagging standby is refused; a
    plain failover promotes the other one and no acknowledged row is lost."""
    primary = healthy_cluster
    ahead, behind = sorted(n for n in lab["nodes"] if n != primary)
    set_maintenance(lab, True)
    try:
        node_sql(lab, behind, "ALTER SYSTEM SET primary_conninfo = ''")
        node_sql(lab, behind, "SELECT pg_reload_conf()")
        assert wait_for(lambda: not survey(lab)[behind]["wal_receiver"], 10), "%s still streams" % behind
        ids = [int(time.time() * 1000) * 1000 + i for i in range(50)]
        node_sql(lab, primary, "INSERT INTO pgha_chaos (id) SELECT unnest(%s::bigint[])", (list(ids),))
        KillPostmaster().inject(primary)
        before = roles(lab)
        assert_refused(ansible.playbook("pgha.cluster.failover", "-e", "failed_node=%s" % primary,
                                        "-e", "candidate=%s" % behind),
                       "candidate %s is behind %s" % (behind, ahead))
        assert roles(lab) == before
        dry = ansible.playbook("pgha.cluster.failover", "--check", "-e", "failed_node=%s" % primary)
        assert dry.returncode == 0 and "promote %s" % ahead in dry.stdout, outcome(dry)
        assert roles(lab) == before and no_lock_left(lab), "failover --check changed a server or left its lock"
        result = ansible.playbook("pgha.cluster.failover", "-e", "failed_node=%s" % primary)
        assert result.returncode == 0, outcome(result)
        assert primaries(survey(lab)) == [ahead]
        check_no_acked_row_lost(lab, ahead, [(i, None, None) for i in ids])
    finally:
        set_maintenance(lab, False)
    assert wait_for(lambda: followers_ok(lab, ahead), 30), "%s does not stream from %s" % (behind, ahead)
    rebuild = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % primary)
    assert rebuild.returncode == 0, outcome(rebuild)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool did not attach every node"


def set_maintenance(lab, on):
    for node in lab["nodes"]:
        lab_exec(node, ("touch %s" if on else "rm -f %s") % MAINTENANCE)


# (playbook, its extra vars with {primary}/{standby} filled in, what the refusal names)
BAD_OPERATOR_INPUT = [
    ("follow_primary", ["nodes=pg9"], "nodes must name PostgreSQL nodes"),
    ("follow_primary", ["nodes="], "nodes must name PostgreSQL nodes"),
    ("follow_primary", ["nodes={standby},"], "nodes must name PostgreSQL nodes"),
    ("follow_primary", ["nodes={primary}"], "is the primary, it has nothing to follow"),
    ("stop", ["break_lock=maybe"], "break_lock must be true or false"),
    ("rebuild", ["target={standby}", "basebackup=maybe"], "basebackup must be true or false"),
    ("failover", ["force=maybe"], "force must be true or false"),
    ("start", ["force=true"], "force=true starts a primary without its standby's confirmation"),
    ("switchover", ["candidate=pg9"], "candidate must name the PostgreSQL standby"),
]


def test_bad_operator_input_is_refused_naming_it_with_nothing_changed_and_no_lock_left(ansible, lab, healthy_cluster):
    before = roles(lab)
    standby = sorted(n for n in lab["nodes"] if n != healthy_cluster)[0]
    for playbook, extra, message in BAD_OPERATOR_INPUT:
        args = []
        for item in extra:
            args += ["-e", item.format(primary=healthy_cluster, standby=standby)]
        result = ansible.playbook("pgha.cluster." + playbook, *args)
        assert result.returncode != 0 and message in result.stdout, (playbook, extra, outcome(result))
        assert roles(lab) == before, (playbook, extra)
        assert no_lock_left(lab), (playbook, extra)
