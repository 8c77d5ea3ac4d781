"""pg_user's argument handling, refusals, check-mode result and idempotence, with a fake
connection that answers the role query and records the statements run."""
import psycopg2
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import postgres
from ansible_collections.pgha.cluster.plugins.module_utils.scram import make_verifier, verifier_matches
from ansible_collections.pgha.cluster.plugins.modules import pg_user
from ansible_collections.pgha.cluster.tests.unit.plugins.modules.module_harness import FakeConn, run

ARGS = {"name": "app", "password": "secret-1", "replication": True, "member_of": ["pg_monitor"]}


def role(password="secret-1", replication=True, member_of=("pg_monitor",)):
    return {"rolsuper": False, "rolreplication": replication, "rolcanlogin": True,
            "rolpassword": make_verifier(password), "member_of": list(member_of)}


@pytest.fixture
def server(monkeypatch):
    """One role (None: absent), the server's scram_iterations, and the statements executed."""
    state = {"role": None, "iterations": "8192", "executed": [], "connected": 0}

    def connect(params):
        state["connected"] += 1
        return FakeConn()

    def query_one(conn, sql, args=None):
        if "scram_iterations" in sql:
            return {"iterations": state["iterations"]}
        assert args == ("app",)
        return state["role"]

    def query(conn, sql, args=None):
        state["executed"].append((sql, args))
        return []
    monkeypatch.setattr(pg_user, "connect", connect)
    monkeypatch.setattr(pg_user, "query_one", query_one)
    monkeypatch.setattr(pg_user, "query", query)
    return state


def test_pg_user_creates_a_role_with_a_verifier_at_the_servers_iterations(monkeypatch, server):
    result = run(monkeypatch, pg_user, ARGS)
    assert not result["failed"] and result["changed"]
    assert result["executed_queries"] == ["""CREATE ROLE "app" LOGIN NOSUPERUSER REPLICATION PASSWORD '********'""",
                                          'GRANT "pg_monitor" TO "app"']
    (_create, (verifier,)), (_grant, no_args) = server["executed"]
    assert verifier.startswith("SCRAM-SHA-256$8192:") and verifier_matches(verifier, "secret-1")
    assert no_args is None and "secret-1" not in repr(result)


def test_pg_user_falls_back_to_4096_iterations_before_postgresql_16(monkeypatch, server):
    server["iterations"] = None
    run(monkeypatch, pg_user, ARGS)
    assert server["executed"][0][1][0].startswith("SCRAM-SHA-256$4096:")


def test_pg_user_leaves_a_matching_role_alone(monkeypatch, server):
    server["role"] = role()
    result = run(monkeypatch, pg_user, ARGS)
    assert not result["failed"] and not result["changed"]
    assert result["executed_queries"] == [] and server["executed"] == []


def test_pg_user_changes_only_what_differs(monkeypatch, server):
    server["role"] = role(password="old-secret")
    result = run(monkeypatch, pg_user, ARGS)
    assert result["changed"] and result["executed_queries"] == ["""ALTER ROLE "app" PASSWORD '********'"""]
    assert result["diff"]["after"]["password"] == "changed" and result["diff"]["before"]["replication"] is True


def test_pg_user_check_mode_executes_nothing(monkeypatch, server):
    server["role"] = role(replication=False, member_of=())
    result = run(monkeypatch, pg_user, dict(ARGS, _ansible_check_mode=True))
    assert not result["failed"] and result["changed"] and server["executed"] == []
    assert result["executed_queries"] == ['ALTER ROLE "app" LOGIN NOSUPERUSER REPLICATION', 'GRANT "pg_monitor" TO "app"']


@pytest.mark.parametrize("args, words", [
    (dict(ARGS, name='app"; DROP ROLE postgres; --'), "invalid role name"),
    (dict(ARGS, member_of=["pg monitor"]), "invalid role name 'pg monitor'"),
    ({"name": "app"}, "password"),
])
def test_pg_user_refuses_bad_arguments_before_connecting(monkeypatch, server, args, words):
    result = run(monkeypatch, pg_user, args)
    assert result["failed"] and words in result["msg"] and server["connected"] == 0


def test_pg_user_refuses_when_the_server_cannot_be_reached(monkeypatch, server):
    def refuse(params):
        raise postgres.PgConnectError("cannot connect to 10.0.0.9:5432")
    monkeypatch.setattr(pg_user, "connect", refuse)
    result = run(monkeypatch, pg_user, ARGS)
    assert result["failed"] and "cannot connect to 10.0.0.9" in result["msg"]


def test_pg_user_failure_message_hides_the_login_password(monkeypatch, server):
    def query(conn, sql, args=None):
        raise psycopg2.Error("permission denied for login hunter2")
    monkeypatch.setattr(pg_user, "query", query)
    result = run(monkeypatch, pg_user, dict(ARGS, login_password="hunter2"))
    assert result["failed"] and result["msg"] == "role app: permission denied for login ********"
