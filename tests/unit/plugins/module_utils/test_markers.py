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
