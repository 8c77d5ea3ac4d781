"""Chaos: selective partitions (bin/lab partition). The primary keeps its own link, so a
client on the host still reaches it directly while its peers do not.

- primary cut from every peer: its node guard stops it once no majority confirmed it for
  the lease; only then does the other side promote. A direct writer to the old primary
  must see no commit acknowledged after the new primary's first one. A playbook's operation
  lock is left on the old primary alone (as when a playbook loses the host before it can
  give the lock back): it must not pause the lease of a node that no longer reaches its peers.
- only the watchdog leader's view of the primary cut (or, when the leader is the primary,
  one standby's): the other standby still streams from the primary, so nothing is
  promoted and the primary keeps taking writes.
"""
import time

import pytest

from cluster_probe import (LIVENESS_NODE_LOSS, FreshWriter, Sampler, Writer, check_no_acked_row_lost, followers_ok, lab_cli,
                           lab_exec, pool_attached, primaries, stopped, survey, vip_holders, wait_for)
from conftest import outcome, report

OPERATION_LOCK = "/var/lib/pgha/operation.lock"   # pgha_operation_lock


def started(*threads):
    for thread in threads:
        thread.start()
    return threads


def guard_pid(node):
    return lab_exec(node, "systemctl show -P MainPID pgha-guard").stdout.strip()


@pytest.mark.parametrize("frozen_guard", [False, True], ids=["guard", "frozen-guard"])
def test_primary_cut_from_its_peers_stops_before_the_promotion(lab, ansible, healthy_cluster, frozen_guard):
    """frozen-guard: the old primary's guard is stopped (SIGSTOP) as the cut begins; systemd's
    watchdog kills it and starts it again, and the new guard finds the lease as old as it is."""
    old = healthy_cluster
    old_address, peers = lab["nodes"][old], [n for n in lab["nodes"] if n != old]
    # New clients straight to the peers find the new primary (the virtual IP's move after a
    # partition is the watchdog's part, measured by the link-cut failover test and bin/bench).
    to_peers = [FreshWriter(lab, host=lab["nodes"][peer], port=5432, pause=0.2) for peer in peers]
    via_vip, direct, sampler = started(FreshWriter(lab), Writer(lab, host=old_address, port=5432), Sampler(lab))
    started(*to_peers)
    assert wait_for(lambda: len(via_vip.acked) > 20 and len(direct.acked) > 20, 20), "writers never wrote"
    left = lab_exec(old, "mkdir %s && echo 'switchover left-by-test' > %s/holder" % (OPERATION_LOCK, OPERATION_LOCK))
    assert left.returncode == 0, left.stderr
    frozen = guard_pid(old) if frozen_guard else None
    if frozen:
        assert lab_exec(old, "kill -STOP %s" % frozen).returncode == 0
    cut_at = float(lab_cli("partition", old, "--from", ",".join(peers)).split()[0])
    try:
        first = wait_for(lambda: sorted((t, s) for writer in to_peers for _, t, s in writer.acked if t > cut_at),
                         LIVENESS_NODE_LOSS, 0.05)
        assert first, "no write on a new primary within %.0f s of the partition" % LIVENESS_NODE_LOSS
        time.sleep(2)
        late = [t for _, t, _ in direct.acked if t >= first[0][0]]
        old_last = max([t for _, t, _ in direct.acked if t > cut_at] or [cut_at])
        assert late == [], "the old primary acknowledged %d commits after the new primary's first" % len(late)
        assert wait_for(lambda: lab_exec(old, "test -e /var/lib/pgha/fenced").returncode == 0, 10), \
            "the old primary is not fenced"
        if frozen:
            assert guard_pid(old) not in (frozen, "0"), "the frozen guard was not started again"
    finally:
        lab_cli("heal", old)
        lab_exec(old, "rm -rf %s" % OPERATION_LOCK)
    stopped(via_vip, direct, sampler, *to_peers)
    assert sampler.two_primaries == [], "two primaries acknowledging commits: %s" % sampler.two_primaries[:3]
    new = [n for n, a in lab["nodes"].items() if a == first[0][1]][0]
    # the lab runs synchronous replication: nothing acknowledged through the VIP or by the new primary is lost
    check_no_acked_row_lost(lab, new, via_vip.acked + [row for writer in to_peers for row in writer.acked])
    result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old)
    assert result.returncode == 0, outcome(result)
    assert wait_for(lambda: followers_ok(lab, new), 30)
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 30), "pgpool did not attach every node"
    report("chaos.txt", "partition of the primary %s from %s (an operation lock left on it%s): old primary answered "
           "writes until +%.2f s, first write on %s at +%.2f s, 0 commits acknowledged by the old primary after it, "
           "%d direct commits during the cut"
           % (old, ",".join(peers), ", its guard frozen" if frozen else "", old_last - cut_at, new, first[0][0] - cut_at,
              len([1 for _, t, _ in direct.acked if t > cut_at])))


def test_a_partial_cut_of_the_primary_promotes_nothing(lab, ansible, healthy_cluster):
    primary = healthy_cluster
    leader = vip_holders(lab)[0]
    cut_from = leader if leader != primary else sorted(n for n in lab["nodes"] if n != primary)[0]
    direct, sampler = started(Writer(lab, host=lab["nodes"][primary], port=5432), Sampler(lab))
    assert wait_for(lambda: len(direct.acked) > 20, 20), "writer never wrote"
    cut_at = float(lab_cli("partition", primary, "--from", cut_from).split()[0])
    try:
        time.sleep(15)
        assert primaries(survey(lab)) == [primary], "a partial cut changed the primary: %s" % primaries(survey(lab))
        assert [t for _, t, _ in direct.acked if t > cut_at + 10], "the primary stopped taking writes"
    finally:
        lab_cli("heal", primary)
    stopped(direct, sampler)
    assert sampler.two_primaries == []
    assert wait_for(lambda: followers_ok(lab, primary), 30), "standbys do not all stream again after the heal"
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 60), "pgpool did not attach every node again"
    report("chaos.txt", "partial cut of the primary %s from %s (watchdog leader %s): no promotion, %d commits "
           "during the cut" % (primary, cut_from, leader, len([1 for _, t, _ in direct.acked if t > cut_at])))


pytestmark = pytest.mark.usefixtures("chaos_table")
