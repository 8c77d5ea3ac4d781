"""A failover that was refused is tried again once what refused it has passed: pgpool asks
for a failover only once, so the hook keeps trying while the failed primary stays silent."""
import time

from cluster_probe import (LIVENESS_NODE_LOSS, PowerOff, Sampler, Writer, check_no_acked_row_lost, followers_ok,
                           lab_exec, pg_version, pool_attached, primaries, stopped, survey, wait_for)
from conftest import outcome, report


def test_a_refused_failover_is_tried_again_once_a_standby_is_back(lab, ansible, healthy_cluster):
    """One standby stopped, then the primary's node powered off: one standby of three runs, no
    new primary could hold its lease, the failover is refused and nothing is promoted. Once
    the stopped standby runs again, the hook's retry promotes the most advanced standby and
    tells pgpool: writes through the virtual IP come back without an operator."""
    old = healthy_cluster
    down = sorted(n for n in lab["nodes"] if n != old)[-1]
    unit = "postgresql@%s-main" % pg_version(down)
    power = PowerOff()
    assert lab_exec(down, "systemctl stop %s" % unit).returncode == 0
    writer, sampler = Writer(lab), Sampler(lab)
    writer.start()
    sampler.start()
    try:
        assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote"
        fault_at = power.inject(old)
        time.sleep(12)
        assert primaries(survey(lab)) == [], "a primary was promoted while one standby of three ran"
        assert not [t for _, t, _ in writer.acked if t > fault_at + 1], "writes acknowledged with no primary"
        back_at = time.time()
        assert lab_exec(down, "systemctl start %s" % unit).returncode == 0
        first = wait_for(lambda: [t for _, t, srv in writer.acked if t > back_at], LIVENESS_NODE_LOSS, 0.1)
        assert first, "no write through pgpool within %.0f s of the standby's return: %s" % (
            LIVENESS_NODE_LOSS, writer.errors[-3:])
        new = primaries(survey(lab))
        assert len(new) == 1 and new[0] != old, new
    finally:
        stopped(writer, sampler)
        power.restore(old)
        lab_exec(down, "systemctl start %s" % unit)
    assert sampler.two_primaries == [], "two primaries acknowledging commits: %s" % sampler.two_primaries[:3]
    check_no_acked_row_lost(lab, new[0], writer.acked)
    result = ansible.playbook("pgha.cluster.rebuild", "-e", "target=%s" % old)
    assert result.returncode == 0, outcome(result)
    assert wait_for(lambda: followers_ok(lab, new[0]), 60), "standbys do not all stream from %s" % new[0]
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 60), "pgpool did not attach every node"
    report("chaos.txt", "refused failover retried: %s powered off with %s stopped; %s promoted %.1f s after %s "
           "ran again" % (old, down, new[0], first[0] - back_at, down))
