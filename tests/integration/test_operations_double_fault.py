"""Double fault in synchronous mode (the lab's setting) with the default
pgha_synchronous_mode_strict: false. The primary dies (kill -9: its fence is verified, so
the failover records it on the new primary as fenced), then the last other standby dies:
the new primary keeps its lease with the fenced old primary's confirmation, turns
asynchronous replication on and takes writes alone; status.yml says so loudly. Once the
standby runs again it is synchronous again, and the old primary is rebuilt."""
from cluster_probe import (LIVENESS_KILL, KillPostmaster, Sampler, Writer, check_no_acked_row_lost, followers_ok,
                           lab_exec, node_sql, pg_version, pool_attached, primaries, stopped, survey,
                           wait_for)
from conftest import outcome, report

WRITES_RESUME = 10.0   # the bound for the last node (seconds after the second fault)


def sync_names(lab, node):
    return node_sql(lab, node, "SELECT current_setting('synchronous_standby_names')")[0][0]


def test_primary_then_last_standby_die_writes_resume_on_the_last_node(lab, ansible, healthy_cluster):
    old_primary = healthy_cluster
    assert sync_names(lab, old_primary), "the lab runs synchronous replication"
    writer, sampler = Writer(lab), Sampler(lab)
    writer.start()
    sampler.start()
    try:
        assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote before the fault"
        KillPostmaster().inject(old_primary)
        new = wait_for(lambda: [p for p in primaries(survey(lab)) if p != old_primary], LIVENESS_KILL)
        assert new, "no failover after the primary's kill -9"
        new = new[0]
        assert wait_for(lambda: followers_ok(lab, new), 20), "the other standby does not stream from %s" % new
        last_standby = next(n for n in lab["nodes"] if n not in (old_primary, new))
        second = KillPostmaster().inject(last_standby)
        resumed = wait_for(lambda: [t for _, t, srv in writer.acked if t > second + 0.5 and srv == lab["nodes"][new]],
                           WRITES_RESUME + 5, 0.05)
        assert resumed and resumed[0] - second <= WRITES_RESUME, \
            "writes did not resume on %s within %.0f s of the second fault" % (new, WRITES_RESUME)
        assert primaries(survey(lab)) == [new], "the last node stopped taking writes"
        assert sync_names(lab, new) == "", "writes resumed but replication is still synchronous?"
        # The documented -e form: an extra var arrives as the string "true".
        status = ansible.playbook("pgha.cluster.status", "-e", "status_fail_on_warning=true")
        assert "ASYNCHRONOUS replication on %s" % new in status.stdout, outcome(status)
        assert status.returncode != 0 and "the cluster status shows warnings" in status.stdout, outcome(status)
        start = lab_exec(last_standby, "systemctl start postgresql@%s-main" % pg_version(last_standby))
        assert start.returncode == 0, start.stderr
        assert wait_for(lambda: sync_names(lab, new) != "", 30), "back to synchronous once the standby streams"
    finally:
        stopped(writer, sampler)
    assert sampler.two_primaries == [], "two primaries acknowledging commits: %s" % sampler.two_primaries[:3]
    check_no_acked_row_lost(lab, new, writer.acked)
    result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old_primary)
    assert result.returncode == 0, outcome(result)
    assert lab_exec(new, "grep -qx %s /var/lib/pgha/fenced-peers" % old_primary).returncode != 0, \
        "the rebuilt node still counts as fenced on %s" % new
    assert wait_for(lambda: followers_ok(lab, new), 30)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool did not attach every node"
    report("chaos.txt", "double fault (sync, not strict): %s then %s died; writes on %s %.2f s after the second "
           "fault, asynchronous until %s streamed again" % (old_primary, last_standby, new, resumed[0] - second,
                                                            last_standby))
