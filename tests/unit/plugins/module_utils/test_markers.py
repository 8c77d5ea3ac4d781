"""Pausing markers expire: a playbook that died must not pause the guard and the hook forever."""
import os

from ansible_collections.pgha.cluster.plugins.module_utils import markers


def test_a_fresh_marker_pauses_and_a_stale_one_does_not(tmp_path):
    fresh, old = tmp_path / "maintenance", tmp_path / "operation.lock"
    fresh.write_text("switchover\n")
    old.mkdir()
    os.utime(old, (1000.0, 1000.0))
    now = os.stat(fresh).st_mtime + 10
    assert markers.pausing_marker([str(old), str(fresh)], max_age=900, now=now) == (str(fresh), 10.0)
    fresh.unlink()
    path, stale = markers.pausing_marker([str(old), str(fresh), ""], max_age=900, now=now)
    assert path is None and [marker for marker, unused in stale] == [str(old)]


def test_no_marker():
    assert markers.pausing_marker(["/nonexistent/pgha-marker"]) == (None, [])


def test_a_rebuild_holding_the_lock_does_not_pause_automatic_failover(tmp_path):
    lock = tmp_path / "operation.lock"
    lock.mkdir()
    (lock / "holder").write_text("rebuild of pg1 by dba on ctl (Rebuild) at 2026-12-05\n")
    assert markers.pausing_marker([str(lock)]) == (None, [])
    (lock / "holder").write_text("failover by dba on ctl (Failover) at 2026-12-05\n")
    assert markers.pausing_marker([str(lock)])[0] == str(lock)


def test_a_lock_whose_holder_is_not_written_yet_pauses(tmp_path):
    lock = tmp_path / "operation.lock"
    lock.mkdir()
    assert markers.pausing_marker([str(lock)])[0] == str(lock)
