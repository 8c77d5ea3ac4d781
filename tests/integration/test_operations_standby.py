"""Kill a standby under a writer: writes go on, pgpool detaches it, follow_primary brings it back."""
import os

from cluster_probe import (Writer, check_no_acked_row_lost, check_reads_through_pgpool_are_fresh, followers_ok,
                           lab_exec, pool_attached, primaries, survey, wait_for)
from conftest import outcome, report

CYCLES = int(os.environ.get("PGHA_CHAOS_OTHER_CYCLES", "2"))


def pool_status(ansible, lab, node):
    args = {"source": "pcp", "pcp_host": "localhost", "pcp_user": "pgha_pcp",
            "pcp_password": lab["pgha_pcp_password"]}
    result, _ = ansible.module("pg1", "pgha.cluster.pgpool_node_info", args)
    return result["nodes"][sorted(lab["nodes"]).index(node)]["status"]


def test_kill_standby_then_follow_primary(lab, ansible, healthy_cluster):
    primary = primaries(survey(lab))[0]
    standbys = sorted(n for n in lab["nodes"] if n != primary)
    for cycle in range(CYCLES):
        kill_standby_cycle(lab, ansible, primary, standbys[cycle % len(standbys)])


def kill_standby_cycle(lab, ansible, primary, standby):
    writer = Writer(lab)
    writer.start()
    assert wait_for(lambda: len(writer.acked) > 20, 20)
    version = lab_exec(standby, "ls /var/lib/postgresql").stdout.split()[0]
    kill = lab_exec(standby, "pid=$(head -1 /var/lib/postgresql/%s/main/postmaster.pid); date +%%s.%%N; kill -9 $pid"
                    % version)
    assert kill.returncode == 0, kill.stderr
    killed_at = float(kill.stdout.split()[0])
    # Writes go on (synchronous quorum ANY 1: the other standby acknowledges).
    assert wait_for(lambda: len([t for _, t, _ in writer.acked if t > killed_at + 1]) > 10, 20), \
        "writes stopped after a standby died"
    after = [t for _, t, _ in writer.acked if t > killed_at - 1]
    longest_pause = max(b - a for a, b in zip(after, after[1:]))
    assert wait_for(lambda: pool_status(ansible, lab, standby) == "down", 20), "pgpool kept the dead standby up"
    assert primaries(survey(lab)) == [primary]
    start = lab_exec(standby, "systemctl start postgresql@%s-main" % version)
    assert start.returncode == 0, "a standby (no fence lock) must be allowed to start: %s" % start.stderr
    result = ansible.playbook("pgha.cluster.follow_primary", "-e", "nodes=%s" % standby)
    assert result.returncode == 0, outcome(result)
    assert wait_for(lambda: followers_ok(lab, primary), 20)
    assert pool_status(ansible, lab, standby) in ("up", "waiting")
    writer.stop.set()
    writer.join(10)
    check_no_acked_row_lost(lab, primary, writer.acked)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 20), "pgpool did not attach every node"
    check_reads_through_pgpool_are_fresh(lab, writer.acked[-1][0])
    report("chaos.txt", "kill -9 standby %s: longest write pause %.2f s; back and attached by follow_primary" % (
        standby, longest_pause))
