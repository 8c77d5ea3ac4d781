"""Chaos: kill -9 every pgpool process on the watchdog leader (which holds the virtual IP)
under a writer. Another pgpool must become leader and take the VIP, writes resume, the
database servers stay as they are, and the killed pgpool comes back (systemd restarts it)
and joins as a standby."""
import os
import statistics

from cluster_probe import (LIVENESS_NODE_LOSS, Writer, healthy_watchdog, lab_exec, pool_attached, primaries, survey,
                           vip_holders, wait_for)
from conftest import report

CYCLES = int(os.environ.get("PGHA_CHAOS_OTHER_CYCLES", "2"))


def kill_leader_cycle(lab, ansible, cycle):
    members = len(lab["nodes"])
    assert wait_for(lambda: healthy_watchdog(ansible, lab, members), 60), "watchdog not healthy before the fault"
    leader = vip_holders(lab)[0]
    servers_before = dict((n, f["role"]) for n, f in survey(lab).items())
    writer = Writer(lab)
    writer.start()
    assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote"
    kill = lab_exec(leader, "date +%s.%N; pkill -KILL -x pgpool")
    assert kill.returncode == 0, kill.stderr
    killed_at = float(kill.stdout.split()[0])
    resumed = wait_for(lambda: [t for _, t, _ in writer.acked if t > killed_at + 0.2], LIVENESS_NODE_LOSS, 0.05)
    assert resumed, "cycle %d: no write through the VIP within %.0f s of killing pgpool on %s" % (
        cycle, LIVENESS_NODE_LOSS, leader)
    to_write = resumed[0] - killed_at
    new_holders = wait_for(lambda: [n for n in vip_holders(lab) if n != leader], 20)
    assert new_holders and len(new_holders) == 1, "the VIP did not move to exactly one other node"
    # systemd restarts the killed pgpool; it must join as a standby and drop the stale VIP.
    assert wait_for(lambda: healthy_watchdog(ansible, lab, members), 90), \
        "cycle %d: the restarted pgpool on %s did not rejoin the watchdog" % (cycle, leader)
    assert vip_holders(lab) == new_holders, "the VIP moved back or is held twice: %s" % vip_holders(lab)
    writer.stop.set()
    writer.join(10)
    assert dict((n, f["role"]) for n, f in survey(lab).items()) == servers_before, \
        "losing a pgpool changed a database server"
    assert len(primaries(survey(lab))) == 1
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 20), "pgpool lost a backend"
    report("chaos.txt", "watchdog leader kill cycle %d: pgpool on %s killed, VIP to %s, fault-to-write %.2f s"
           % (cycle, leader, new_holders[0], to_write))
    return to_write


def test_kill_watchdog_leader_cycles(lab, ansible, healthy_cluster):
    times = [kill_leader_cycle(lab, ansible, cycle) for cycle in range(1, CYCLES + 1)]
    report("chaos.txt", "watchdog leader kill over %d cycles: fault-to-write min %.2f median %.2f max %.2f s"
           % (CYCLES, min(times), statistics.median(times), max(times)))
