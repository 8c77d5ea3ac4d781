"""Chaos: the primary fails under a continuous writer; then the old primary is rebuilt.

Fault types: kill -9 of the postmaster (pgpool's session to it breaks at once), power-off
of the node (its container is killed: only health checks notice) and a cut network link
(the old primary keeps running, isolated). A writer through the virtual IP records every
acknowledged commit; a sampler watches every node. Runs after the module tests on the
same lab.
"""
import os
import statistics
import subprocess
import time

import pytest

from cluster_probe import (CutLink, KillPostmaster, PowerOff, Sampler, Writer, check_no_acked_row_lost,
                           check_reads_through_pgpool_are_fresh, followers_ok, lab_exec, params, pg_version,
                           pool_attached, pool_view, primaries, stopped, survey, wait_for)
from conftest import REPO, outcome, report
from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import survey_node

KILL_CYCLES = int(os.environ.get("PGHA_CHAOS_CYCLES", "3"))
OTHER_CYCLES = int(os.environ.get("PGHA_CHAOS_OTHER_CYCLES", "2"))
FOLLOW_BUDGET = 10.0


def old_primary_is_fenced(lab, node):
    """Lock file present and PostgreSQL not answering (stopped by the hook's fence, its
    background retry after the node came back, or the start guard at boot)."""
    return (lab_exec(node, "test -e /var/lib/pgha/fenced").returncode == 0 and
            survey_node(params(lab, lab["nodes"][node]), local=False, probe_timeout=0.3)["reachable"] is False)


def failover_cycle(lab, ansible, fault, cycle):
    old_primary = primaries(survey(lab))[0]
    try:
        return checked_failover(lab, ansible, fault, cycle, old_primary)
    except BaseException:
        fault.restore(old_primary)  # leave a reachable lab to the tests that follow
        raise


def checked_failover(lab, ansible, fault, cycle, old_primary):
    old_address = lab["nodes"][old_primary]
    writer, sampler = Writer(lab), Sampler(lab)
    writer.start()
    sampler.start()
    assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote before the fault"
    fault_at = fault.inject(old_primary)
    # The first write acknowledged by another server than the failed one (a commit in
    # flight may still be acknowledged by the dying primary: that is not recovery).
    first = wait_for(lambda: [(t, srv) for _, t, srv in writer.acked if t > fault_at and srv != old_address],
                     fault.cycle_limit, 0.05)
    assert first, "%s cycle %d: no write acknowledged within %.0f s of the fault on %s" % (
        fault.name, cycle, fault.cycle_limit, old_primary)
    to_write = first[0][0] - fault_at
    for at, error in writer.errors:
        if fault_at - 1 < at < first[0][0]:
            report("chaos-writer.txt", "%s cycle %d +%.3f s %s" % (fault.name, cycle, at - fault_at, error))
    new_primary = wait_for(lambda: (primaries(survey(lab)) or [None])[0] if old_primary not in primaries(survey(lab))
                           else None, 10)
    assert new_primary and new_primary != old_primary
    assert first[0][1] == lab["nodes"][new_primary], "a write landed on %s, not the new primary" % first[0][1]
    assert wait_for(lambda: followers_ok(lab, new_primary), FOLLOW_BUDGET + 10), \
        "%s cycle %d: standbys do not all stream from %s" % (fault.name, cycle, new_primary)
    all_following = time.time() - fault_at
    followers = [n for n in lab["nodes"] if n != old_primary]
    assert wait_for(lambda: pool_attached(lab, followers), 20), "pgpool did not attach %s" % followers
    check_reads_through_pgpool_are_fresh(lab, writer.acked[-1][0])
    restored_at = time.time()
    fault.restore(old_primary)
    assert wait_for(lambda: old_primary_is_fenced(lab, old_primary), 30), \
        "%s cycle %d: %s came back and was not fenced" % (fault.name, cycle, old_primary)
    fenced_after = time.time() - restored_at
    # Fenced during the failover (kill -9) or by the hook's retry once it came back: either
    # way the new primary's guard counts it (a second fault leaves the last node its lease).
    assert wait_for(lambda: lab_exec(new_primary, "grep -qx %s /var/lib/pgha/fenced-peers" % old_primary).returncode
                    == 0, 20), "%s cycle %d: %s is fenced but not recorded on %s" % (
                        fault.name, cycle, old_primary, new_primary)
    start = lab_exec(old_primary, "systemctl start postgresql@%s-main" % pg_version(old_primary))
    assert start.returncode != 0, "the fenced old primary %s started again" % old_primary
    if cycle == 1 and isinstance(fault, KillPostmaster):
        restart_every_pgpool_at_once(lab, old_primary, new_primary)
    stopped(writer, sampler)
    assert sampler.two_primaries == [], "two primaries acknowledging commits: %s" % sampler.two_primaries[:3]
    check_no_acked_row_lost(lab, new_primary, writer.acked)
    started = time.time()
    result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old_primary)
    assert result.returncode == 0, outcome(result)
    rebuild = time.time() - started
    assert wait_for(lambda: followers_ok(lab, new_primary), 20)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 20), "pgpool did not attach every node"
    isolated = (sampler.stale_primaries[-1][0] - sampler.stale_primaries[0][0]) if sampler.stale_primaries else 0.0
    report("chaos.txt", "%s cycle %d: %s -> %s, fault-to-write %.2f s, all following %.2f s, fenced %.1f s after "
           "it came back, isolated old primary seen for %.1f s, rebuild %.1f s, acked %d" % (
               fault.name, cycle, old_primary, new_primary, to_write, all_following, fenced_after, isolated,
               rebuild, len(writer.acked)))
    return to_write, all_following, rebuild


def restart_every_pgpool_at_once(lab, old_primary, new_primary):
    """A full restart of every pgpool (their backend status and watchdog state start afresh)
    attaches the new primary and never the fenced old one."""
    restarts = [subprocess.Popen([str(REPO / "bin" / "lab"), "exec", node, "systemctl", "restart", "pgpool2"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for node in lab["nodes"]]
    for restart in restarts:
        assert restart.wait(120) == 0, restart.stderr.read()
    followers = [n for n in lab["nodes"] if n != old_primary]
    assert wait_for(lambda: pool_attached(lab, followers), 60), "pgpool did not come back after a full restart"
    view = pool_view(lab)
    up = [address for address, row in view.items() if row["status"] in ("up", "waiting")]
    assert lab["nodes"][old_primary] not in up, "a full pgpool restart attached the fenced old primary: %s" % view
    assert [a for a in up if view[a]["role"] == "primary"] == [lab["nodes"][new_primary]], view


@pytest.mark.parametrize("fault, cycles", [(KillPostmaster(), KILL_CYCLES), (PowerOff(), OTHER_CYCLES),
                                           (CutLink(), OTHER_CYCLES)], ids=lambda v: getattr(v, "name", v))
def test_primary_failure_cycles(lab, ansible, healthy_cluster, fault, cycles):
    results = [failover_cycle(lab, ansible, fault, cycle) for cycle in range(1, cycles + 1)]
    to_write, following, rebuild = ([r[i] for r in results] for i in range(3))
    report("chaos.txt", "%s over %d cycles: fault-to-write min %.2f median %.2f max %.2f s; all following max "
           "%.2f s; rebuild median %.1f s" % (fault.name, cycles, min(to_write), statistics.median(to_write),
                                                max(to_write), max(following), statistics.median(rebuild)))
