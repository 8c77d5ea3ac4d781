"""Chaos: kill -9 the primary's postmaster under a continuous writer, then rebuild.

Measured from the outside: a writer through the virtual IP records every acknowledged
commit; a sampler watches every node's role. Runs after the module tests on the same lab.
"""
import os
import statistics
import time

from cluster_probe import (Sampler, Writer, check_no_acked_row_lost, check_old_primary_stays_fenced,
                           check_reads_through_pgpool_are_fresh, followers_ok, lab_exec, pool_attached, primaries, survey,
                           wait_for)
from conftest import report

CYCLES = int(os.environ.get("PGHA_CHAOS_CYCLES", "3"))
FOLLOW_BUDGET = 10.0


def test_kill_primary_failover_and_rebuild_cycles(lab, ansible, chaos_table):
    fault_to_write, follow_times, rebuild_times = [], [], []
    for cycle in range(1, CYCLES + 1):
        old_primary = primaries(survey(lab))[0]
        writer, sampler = Writer(lab), Sampler(lab)
        writer.start()
        sampler.start()
        assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote before the fault"
        version = lab_exec(old_primary, "ls /var/lib/postgresql").stdout.split()[0]
        # The node stamps the moment of the kill itself: podman exec's own start-up time
        # (up to seconds on a loaded host) must not count as failover time.
        kill = lab_exec(old_primary, "pid=$(head -1 /var/lib/postgresql/%s/main/postmaster.pid); "
                                     "date +%%s.%%N; kill -9 $pid" % version)
        assert kill.returncode == 0, kill.stderr
        killed_at = float(kill.stdout.split()[0])
        old_address = lab["nodes"][old_primary]
        # The first write acknowledged by another server than the killed one (a commit that
        # was in flight may still be acknowledged by the dying primary: that is not recovery).
        first = wait_for(lambda: [(t, srv) for _, t, srv in writer.acked if t > killed_at and srv != old_address],
                         30, 0.05)
        assert first, "cycle %d: no write acknowledged within 30 s of killing %s" % (cycle, old_primary)
        fault_to_write.append(first[0][0] - killed_at)
        new_primary = wait_for(lambda: (primaries(survey(lab)) or [None])[0], 10)
        assert new_primary and new_primary != old_primary
        assert first[0][1] == lab["nodes"][new_primary], "a write landed on %s, not the new primary" % first[0][1]
        assert wait_for(lambda: followers_ok(lab, new_primary), FOLLOW_BUDGET + 10), \
            "cycle %d: standbys do not all stream from %s" % (cycle, new_primary)
        follow_times.append(time.time() - killed_at)
        writer.stop.set()
        writer.join(10)
        sampler.stop.set()
        sampler.join(10)
        assert sampler.two_primaries == [], "two primaries seen: %s" % sampler.two_primaries[:3]
        check_no_acked_row_lost(lab, new_primary, writer.acked)
        followers = [n for n in lab["nodes"] if n != old_primary]
        assert wait_for(lambda: pool_attached(lab, followers), 20), "pgpool did not attach %s" % followers
        check_reads_through_pgpool_are_fresh(lab, writer.acked[-1][0])
        check_old_primary_stays_fenced(lab, old_primary, version)
        started = time.time()
        result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old_primary)
        assert result.returncode == 0, result.stdout[-3000:]
        rebuild_times.append(time.time() - started)
        assert wait_for(lambda: followers_ok(lab, new_primary), 20)
        report("chaos.txt", "kill -9 cycle %d: %s -> %s, fault-to-write %.2f s, all following %.2f s, rebuild %.1f s,"
               " acked %d" % (cycle, old_primary, new_primary, fault_to_write[-1], follow_times[-1],
                              rebuild_times[-1], len(writer.acked)))
    report("chaos.txt", "kill -9 over %d cycles: fault-to-write min %.2f median %.2f max %.2f s; all following max %.2f s;"
           " rebuild median %.1f s" % (CYCLES, min(fault_to_write), statistics.median(fault_to_write),
                                       max(fault_to_write), max(follow_times), statistics.median(rebuild_times)))
