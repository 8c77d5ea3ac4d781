"""A primary that restarts by itself stays the primary when no failover could replace it."""
import time

from cluster_probe import (LIVENESS_KILL, Writer, check_no_acked_row_lost, followers_ok, lab_exec, pg_version,
                           pool_attached, primaries, stopped, survey, wait_for)


def test_a_primary_that_crash_restarts_with_a_standby_down_stays_the_primary(lab, healthy_cluster):
    """One standby stopped, then a crash of the primary's checkpointer: the postmaster restarts
    every process (crash recovery) and pgpool asks for a failover. With one standby of three
    running no new primary could hold its lease: refused before any fence, so the primary
    comes back by itself, unlocked, and pgpool attaches it again."""
    primary = healthy_cluster
    down = sorted(n for n in lab["nodes"] if n != primary)[-1]
    version = pg_version(primary)
    unit = "postgresql@%s-main" % version
    assert lab_exec(down, "systemctl stop %s" % unit).returncode == 0
    writer = Writer(lab)
    writer.start()
    try:
        assert wait_for(lambda: len(writer.acked) > 20, 20), "writer never wrote"
        crash = lab_exec(primary, "pkill -9 -f '^postgres: %s/main: checkpointer'" % version)
        assert crash.returncode == 0, "no checkpointer to kill: %s" % crash.stderr
        crashed_at = time.time()
        assert wait_for(lambda: [t for _, t, _ in writer.acked if t > crashed_at + 1], LIVENESS_KILL), \
            "writes did not come back after the crash restart: %s" % writer.errors[-3:]
    finally:
        stopped(writer)
        lab_exec(down, "systemctl start %s" % unit)
    assert primaries(survey(lab)) == [primary], "the crash restart of the primary caused a failover"
    assert lab_exec(primary, "test -e /var/lib/pgha/fenced").returncode != 0, "the restarting primary was fenced"
    check_no_acked_row_lost(lab, primary, writer.acked)
    assert wait_for(lambda: followers_ok(lab, primary), 60), "the stopped standby did not stream again"
    assert wait_for(lambda: pool_attached(lab, list(lab["nodes"])), 60), "pgpool did not attach every node again"
