"""pg_controldata parsing on output captured from PostgreSQL 15 (Debian 12 lab)."""
from collection_path import FIXTURES

from ansible_collections.pgha.cluster.plugins.module_utils.promotion import controldata_field


def controldata(name):
    return (FIXTURES / "pg15" / ("controldata-%s.txt" % name)).read_text()


def test_cleanly_stopped_primary_shows_its_shutdown_checkpoint():
    text = controldata("primary-shut-down")
    assert controldata_field(text, "Database cluster state") == "shut down"
    assert controldata_field(text, "Latest checkpoint location") == "0/409F118"
    assert controldata_field(text, "Database system identifier") == "7711891075466020888"


def test_stopped_standby_is_not_a_clean_primary_shutdown():
    # pg_switchover promotes only after "shut down"; "shut down in recovery" is a standby.
    assert controldata_field(controldata("standby-shut-down"), "Database cluster state") == "shut down in recovery"


def test_running_primary_and_missing_fields():
    text = controldata("primary-running")
    assert controldata_field(text, "Database cluster state") == "in production"
    # The field names contain regex characters; an unknown field is None.
    assert controldata_field(text, "Latest checkpoint's REDO WAL file") == "000000040000000000000004"
    assert controldata_field(text, "No such field") is None
