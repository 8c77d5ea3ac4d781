"""Three PostgreSQL nodes and pgpool on a fourth node of its own: the pgpool node's hook
surveys, fences over ssh and promotes with no PostgreSQL of its own (its .pgpass and ssh
trust come from site.yml); a writer through pgpool loses no acknowledged row."""
import time

from cluster_probe import LIVENESS_KILL, Writer, check_no_acked_row_lost, pool_connect, primaries, survey, wait_for
from conftest import node_exec, report

VERSION_DIR = "/var/lib/postgresql/$(ls /var/lib/postgresql | grep -v '^[.]' | head -1)/main"


def test_kill_primary_is_failed_over_by_the_dedicated_pgpool_node(lab):
    old = wait_for(lambda: primaries(survey(lab)), 30)
    assert len(old) == 1, "expected one primary, found %s" % old
    old = old[0]
    conn = pool_connect(lab)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS pgha_chaos (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
    conn.close()
    writer = Writer(lab)
    writer.start()
    assert wait_for(lambda: len(writer.acked) > 20, 20), "the writer never wrote through pgpool"
    kill = node_exec(old, "pid=$(head -1 %s/postmaster.pid); date +%%s.%%N; kill -9 $pid" % VERSION_DIR)
    assert kill.returncode == 0, kill.stderr
    killed_at = float(kill.stdout.split()[0])
    new = wait_for(lambda: [n for n in primaries(survey(lab)) if n != old], LIVENESS_KILL)
    assert new, "no standby was promoted"
    first = wait_for(lambda: [t for _, t, srv in writer.acked if t > killed_at and srv == lab["nodes"][new[0]]],
                     LIVENESS_KILL, 0.05)
    assert first, "no write acknowledged by the new primary through pgpool"
    time.sleep(1)
    writer.stop.set()
    writer.join(10)
    check_no_acked_row_lost(lab, new[0], writer.acked)
    hook = node_exec(lab["pool"], "journalctl -t pgha-hook --no-pager").stdout
    assert "fence %s: verified" % old in hook and "promoted %s" % new[0] in hook, hook[-2000:]
    report("dedicated pgpool node %s: kill -9 of %s -> %s promoted by its hook, first write %.2f s after the kill, "
           "acked %d, lost 0" % (lab["pool"], old, new[0], first[0] - killed_at, len(writer.acked)))
