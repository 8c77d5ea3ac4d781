"""Two failover.yml runs started at the same moment after the primary died (pgpool's hook
paused by the maintenance marker, so only the playbooks act): exactly one node is promoted,
once; the other run either finds the lock taken or, coming second, nothing to do."""
import os
import threading

from cluster_probe import (KillPostmaster, Sampler, followers_ok, lab_exec, pool_attached, primaries, survey,
                           wait_for)
from conftest import outcome, report

CYCLES = int(os.environ.get("PGHA_CHAOS_OTHER_CYCLES", "2"))
MAINTENANCE = "/var/lib/pgha/maintenance"


def run_concurrently(ansible, *argv_lists):
    results = [None] * len(argv_lists)

    def run(index, argv):
        results[index] = ansible.playbook(*argv)

    threads = [threading.Thread(target=run, args=(i, argv)) for i, argv in enumerate(argv_lists)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    return results


def concurrent_cycle(lab, ansible, cycle):
    facts = survey(lab)
    old_primary = primaries(facts)[0]
    timeline = facts[old_primary]["timeline"]
    sampler = Sampler(lab)
    sampler.start()
    for node in lab["nodes"]:
        lab_exec(node, "touch %s" % MAINTENANCE)
    try:
        KillPostmaster().inject(old_primary)
        argv = ("pgha.cluster.failover", "-e", "failed_node=%s" % old_primary)
        runs = run_concurrently(ansible, argv, argv)
    finally:
        for node in lab["nodes"]:
            lab_exec(node, "rm -f %s" % MAINTENANCE)
    sampler.stop.set()
    sampler.join(10)
    promoted = [r for r in runs if r.returncode == 0 and "Plan: fence" in r.stdout]
    others = [r for r in runs if r not in promoted]
    assert len(promoted) == 1, "expected one run to promote, got %d:\n%s" % (
        len(promoted), "\n----\n".join(outcome(r, 2000) for r in runs))
    other = others[0]
    locked = other.returncode != 0 and "another operation holds the cluster lock" in other.stdout
    came_second = other.returncode == 0 and "Nothing to do" in other.stdout
    assert locked or came_second, outcome(other)
    after = survey(lab)
    new_primaries = primaries(after)
    assert len(new_primaries) == 1 and new_primaries[0] != old_primary, new_primaries
    assert after[new_primaries[0]]["timeline"] == timeline + 1, "promoted more than once"
    assert sampler.two_primaries == [], sampler.two_primaries[:3]
    assert wait_for(lambda: followers_ok(lab, new_primaries[0]), 20)
    result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old_primary)
    assert result.returncode == 0, outcome(result)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool did not attach every node"
    for node in lab["nodes"]:
        assert lab_exec(node, "test -e /var/lib/pgha/operation.lock").returncode != 0, "lock left on %s" % node
    report("chaos.txt", "concurrent failover.yml cycle %d: %s -> %s promoted once; the other run %s" % (
        cycle, old_primary, new_primaries[0], "found the lock taken" if locked else "came second: nothing to do"))


def test_two_concurrent_failover_runs_promote_one_node(lab, ansible, healthy_cluster):
    for cycle in range(1, CYCLES + 1):
        concurrent_cycle(lab, ansible, cycle)
