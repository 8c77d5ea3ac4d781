"""A false alarm: pgpool detaches a primary that is still healthy (what one pgpool node with
a broken link to it would report). The hook must refuse to promote, change no server, and
put the primary back into pgpool by itself."""
import time

from cluster_probe import Writer, lab_exec, pool_attached, primaries, survey, wait_for
from conftest import report


def roles(lab):
    return dict((name, (f["role"], f.get("timeline"))) for name, f in survey(lab).items())


def test_detached_healthy_primary_is_attached_again_without_failover(lab, healthy_cluster):
    before = roles(lab)
    primary = primaries(survey(lab))[0]
    writer = Writer(lab)
    writer.start()
    assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote"
    node_id = sorted(lab["nodes"]).index(primary)
    detach = lab_exec("pg1", "date +%%s.%%N; runuser -u postgres -- pcp_detach_node -h localhost -p 9898 "
                             "-U pgha_pcp -w -n %d" % node_id)
    assert detach.returncode == 0, detach.stdout + detach.stderr
    detached_at = float(detach.stdout.split()[0])
    attached = wait_for(lambda: pool_attached(lab, list(lab["nodes"])) and time.time(), 40, 0.5)
    assert attached, "pgpool did not attach the healthy primary %s again" % primary
    assert wait_for(lambda: [t for _, t, _ in writer.acked if t > attached], 20), "no write after re-attach"
    writer.stop.set()
    writer.join(10)
    assert roles(lab) == before, "a false alarm changed the servers"
    assert lab_exec(primary, "test -e /var/lib/pgha/fenced").returncode != 0, "the healthy primary was fenced"
    assert set(server for _, t, server in writer.acked) == {lab["nodes"][primary]}
    after = [t for _, t, _ in writer.acked if t > detached_at - 1]
    longest_pause = max(b - a for a, b in zip(after, after[1:]))
    report("chaos.txt", "false alarm (pcp_detach_node of healthy primary %s): attached again after %.1f s, "
           "longest write pause %.2f s, no server changed" % (primary, attached - detached_at, longest_pause))
