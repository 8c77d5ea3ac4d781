"""pgpool_node_info's argument handling, sources, check-mode result and failures, with
SHOW pool_nodes rows and pcp output captured from pgpool-II (tests/unit/fixtures)."""
import psycopg2
import pytest

from collection_path import FIXTURES

from ansible_collections.pgha.cluster.plugins.module_utils import pgpool, postgres
from ansible_collections.pgha.cluster.plugins.modules import pgpool_node_info
from ansible_collections.pgha.cluster.tests.unit.plugins.modules.module_harness import FakeConn, run

PGPOOL_43 = FIXTURES / "pgpool-4.3.5-pg15"
PGPOOL_46 = FIXTURES / "pgpool-4.6.1-pg17"


def show_pool_nodes_rows(path):
    """The rows as the driver returns them: every column as text."""
    nodes = pgpool.parse_show_pool_nodes(path.read_text())
    return [dict((name, "" if value is None else str(value)) for name, value in n.items()) for n in nodes]


class FakePcp:
    def __init__(self, error=None):
        self.error, self.calls = error, []

    def node_info(self):
        self.calls.append("node_info")
        if self.error:
            raise pgpool.PcpError(self.error)
        return pgpool.parse_pcp_node_info_verbose((PGPOOL_46 / "c1_after_pcp_node_info_verbose.txt").read_text())

    def watchdog_info(self):
        self.calls.append("watchdog_info")
        return pgpool.parse_pcp_watchdog_info_verbose((PGPOOL_46 / "c0_watchdog_info_verbose.txt").read_text())


@pytest.fixture
def pool(monkeypatch):
    """pgpool answering SHOW pool_nodes after the old primary came back (node 0) and over PCP."""
    state = {"rows": show_pool_nodes_rows(PGPOOL_43 / "extra_old_primary_restarted_after_failover.txt"),
             "connected_to": [], "queries": [], "pcp": FakePcp()}

    def connect(params):
        state["connected_to"].append((params["login_host"], params["login_port"]))
        return FakeConn()

    def query(conn, sql, args=None):
        state["queries"].append(sql)
        return state["rows"]
    monkeypatch.setattr(pgpool_node_info, "connect", connect)
    monkeypatch.setattr(pgpool_node_info, "query", query)
    monkeypatch.setattr(pgpool_node_info, "pcp_from_params", lambda module: state["pcp"])
    return state


@pytest.mark.parametrize("check_mode", [False, True])
def test_pgpool_node_info_reads_show_pool_nodes_on_pgpools_port(monkeypatch, pool, check_mode):
    result = run(monkeypatch, pgpool_node_info, {"login_host": "10.0.0.1", "_ansible_check_mode": check_mode})
    assert not result["failed"] and not result["changed"] and "watchdog" not in result
    assert pool["connected_to"] == [("10.0.0.1", 9999)] and pool["queries"] == ["SHOW pool_nodes"]
    assert result["primary_node_id"] == 1 and result["up_node_ids"] == [1, 2] and result["down_node_ids"] == [0]
    assert result["disagreements"] == ["node 0: pgpool role standby but backend reports primary",
                                       "node 0: detached in pgpool but running as a primary"]
    assert result["nodes"][2]["replication_delay"] == 78936 and result["nodes"][2]["lb_weight"] == 0.333333
    assert pool["pcp"].calls == []


def test_pgpool_node_info_reads_pcp_and_the_watchdog_without_sql(monkeypatch, pool):
    result = run(monkeypatch, pgpool_node_info, {"source": "pcp", "watchdog": True})
    assert not result["failed"] and not result["changed"] and pool["connected_to"] == []
    assert pool["pcp"].calls == ["node_info", "watchdog_info"]
    assert [n["hostname"] for n in result["nodes"]] == ["10.89.50.11", "10.89.50.12", "10.89.50.13"]
    assert result["primary_node_id"] == 1 and result["down_node_ids"] == [0]
    assert result["watchdog"]["leader"] == "10.89.50.11" and result["watchdog"]["quorum"] is True


def test_pgpool_node_info_fails_with_the_pcp_error(monkeypatch, pool):
    pool["pcp"] = FakePcp(error="pcp_node_info failed: authentication failed for user pgha_pcp")
    result = run(monkeypatch, pgpool_node_info, {"source": "pcp"})
    assert result["failed"] and result["msg"] == "pcp_node_info failed: authentication failed for user pgha_pcp"


def test_pgpool_node_info_fails_when_pgpool_cannot_be_reached(monkeypatch, pool):
    def refuse(params):
        raise postgres.PgConnectError("cannot connect to 10.0.0.1:9999")
    monkeypatch.setattr(pgpool_node_info, "connect", refuse)
    result = run(monkeypatch, pgpool_node_info, {"login_host": "10.0.0.1"})
    assert result["failed"] and result["msg"] == "SHOW pool_nodes: cannot connect to 10.0.0.1:9999"


def test_pgpool_node_info_query_failure_hides_the_login_password(monkeypatch, pool):
    def query(conn, sql, args=None):
        raise psycopg2.Error("password authentication failed: hunter2")
    monkeypatch.setattr(pgpool_node_info, "query", query)
    result = run(monkeypatch, pgpool_node_info, {"login_password": "hunter2"})
    assert result["failed"] and result["msg"] == "SHOW pool_nodes failed: password authentication failed: ********"


def test_pgpool_node_info_rejects_an_unknown_source(monkeypatch, pool):
    result = run(monkeypatch, pgpool_node_info, {"source": "http"})
    assert result["failed"] and "source" in result["msg"] and pool["connected_to"] == [] and pool["pcp"].calls == []
