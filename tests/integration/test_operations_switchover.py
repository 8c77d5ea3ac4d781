"""Planned switchover under a continuous writer: no acknowledged row lost, short pause."""
import time

from cluster_probe import (Sampler, Writer, check_no_acked_row_lost, check_reads_through_pgpool_are_fresh,
                           followers_ok, lab_exec, pool_attached, primaries, stopped, survey, wait_for)
from conftest import outcome, report


def test_switchover_to_a_standby_and_back(lab, ansible, chaos_table):
    for _ in range(2):
        old_primary = primaries(survey(lab))[0]
        target = sorted(n for n in lab["nodes"] if n != old_primary)[0]
        writer, sampler = Writer(lab), Sampler(lab)
        writer.start()
        sampler.start()
        assert wait_for(lambda: len(writer.acked) > 20, 20)
        started = time.time()
        result = ansible.playbook("pgha.cluster.switchover", "-e", "candidate=%s" % target)
        elapsed = time.time() - started
        assert result.returncode == 0, outcome(result)
        assert wait_for(lambda: followers_ok(lab, target), 20), "standbys do not all stream from %s" % target
        time.sleep(1)
        stopped(writer, sampler)
        assert primaries(survey(lab)) == [target]
        assert sampler.two_primaries == []
        check_no_acked_row_lost(lab, target, writer.acked)
        assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 20), "pgpool did not attach every node"
        check_reads_through_pgpool_are_fresh(lab, writer.acked[-1][0])
        during = [t for _, t, _ in writer.acked if t >= started]
        pause = max(b - a for a, b in zip(during, during[1:])) if len(during) > 1 else elapsed
        for node in lab["nodes"]:
            assert lab_exec(node, "test ! -e /var/lib/pgha/maintenance").returncode == 0
        report("switchover.txt", "switchover %s -> %s: playbook %.1f s, longest write pause %.2f s, acked %d" % (
            old_primary, target, elapsed, pause, len(writer.acked)))


def test_switchover_refuses_the_primary_as_target(lab, ansible):
    primary = primaries(survey(lab))[0]
    result = ansible.playbook("pgha.cluster.switchover", "-e", "candidate=%s" % primary)
    assert result.returncode != 0 and "refused, nothing changed" in result.stdout
    assert primaries(survey(lab)) == [primary]
