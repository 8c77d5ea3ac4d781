"""What a rolling change asks of a node's service."""
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils.rollout import service_action

HBA = ["pool_hba.conf"]


@pytest.mark.parametrize("running, started_at, times, changed, restart, reload, expected", [
    (False, 0, [], [], False, False, "started"),
    (False, 100, [200], ["pgpool.conf"], True, True, "started"),
    (True, 100, [50, 90], [], False, False, "none"),
    (True, 100, [50, 150], [], False, False, "restarted"),      # written by a run that failed before restarting
    (True, 100, [100], [], False, False, "none"),               # same second as the start: not newer
    (True, 100, [50], ["pgpool.conf"], False, False, "restarted"),
    (True, 100, [50], ["pool_hba.conf"], False, False, "reloaded"),
    (True, 100, [50], ["pool_hba.conf", "pcp.conf"], False, False, "restarted"),
    (True, 100, [150], ["pool_hba.conf"], False, False, "restarted"),   # stale beats a reload-only change
    (True, 100, [50], ["pool_hba.conf"], True, False, "restarted"),
    (True, 100, [50], [], False, True, "reloaded"),
    (True, 100, [50], [], True, False, "restarted"),
    (True, "100", ["50", "150"], [], False, False, "restarted"),  # command output arrives as strings
    (True, 100, [], [], False, False, "none"),                  # no file could be read
])
def test_service_action(running, started_at, times, changed, restart, reload, expected):
    assert service_action(running, started_at, times, changed, HBA, restart, reload) == expected
