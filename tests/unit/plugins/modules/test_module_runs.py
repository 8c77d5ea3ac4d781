"""Each module's argument handling, refusals and check-mode result, with a fake connection at
the module_utils boundary (what the servers do is covered by the integration tests)."""
import pytest
from ansible.module_utils import basic
from collection_path import FIXTURES

from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts, postgres
from ansible_collections.pgha.cluster.plugins.modules import failover_plan, pg_node_info, pg_promote, pgpool_node
from ansible_collections.pgha.cluster.tests.unit.plugins.modules.module_harness import SYSID, FakeConn, node, run


@pytest.fixture
def promote_world(monkeypatch):
    """pg_promote against a fake server: records whether pg_promote was called."""
    world = {"facts": node(), "promoted": []}
    monkeypatch.setattr(pg_promote, "connect", lambda params: FakeConn())
    monkeypatch.setattr(pg_promote, "read_facts", lambda conn: world["facts"])

    def promote(conn, timeout, checkpoint):
        world["promoted"].append(timeout)
        world["facts"] = node("primary", timeline=2)
        return 0.1
    monkeypatch.setattr(pg_promote, "promote", promote)
    return world


def test_pg_promote_promotes_a_standby(monkeypatch, promote_world):
    result = run(monkeypatch, pg_promote, {"expected_system_identifier": SYSID})
    assert result["changed"] and result["timeline"] == 2 and promote_world["promoted"] == [60]
    assert result["diff"] == {"before": {"role": "standby"}, "after": {"role": "primary"}}


def test_pg_promote_check_mode_changes_nothing(monkeypatch, promote_world):
    result = run(monkeypatch, pg_promote, {"_ansible_check_mode": True})
    assert result["changed"] and not promote_world["promoted"]


def test_pg_promote_on_a_primary_is_a_no_op(monkeypatch, promote_world):
    promote_world["facts"] = node("primary")
    result = run(monkeypatch, pg_promote, {})
    assert not result["changed"] and not promote_world["promoted"]


@pytest.mark.parametrize("facts, args, words", [
    (node(sysid="1"), {"expected_system_identifier": SYSID}, "system identifier 1 is not the expected"),
    (node(receiver={"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432}), {},
     "still streams from 10.0.0.1:5432"),
])
def test_pg_promote_refusals_change_nothing(monkeypatch, promote_world, facts, args, words):
    promote_world["facts"] = facts
    result = run(monkeypatch, pg_promote, args)
    assert result["failed"] and words in result["msg"] and not promote_world["promoted"]


def test_pg_promote_rejects_a_bad_argument(monkeypatch, promote_world):
    result = run(monkeypatch, pg_promote, {"timeout": "soon"})
    assert result["failed"] and "timeout" in result["msg"]


def test_pg_node_info_reports_an_unreachable_node_when_asked(monkeypatch):
    def refuse(params):
        raise postgres.PgConnectError("cannot connect to 10.0.0.9:5432")
    monkeypatch.setattr(pg_facts, "connect", refuse)
    assert run(monkeypatch, pg_node_info, {"login_host": "10.0.0.9"})["failed"]
    result = run(monkeypatch, pg_node_info, {"login_host": "10.0.0.9", "fail_on_unreachable": False})
    assert not result["failed"] and result["reachable"] is False and not result["changed"]


def test_pg_node_info_reads_the_timeline_of_a_stopped_server_from_its_control_file(monkeypatch, tmp_path):
    def refuse(params):
        raise postgres.PgConnectError("cannot connect to the local socket")
    ran = []

    def run_command(self, argv, environ_update=None, **unused):
        ran.append((argv, environ_update))
        return 0, (FIXTURES / "pg15" / "controldata-primary-shut-down.txt").read_text(), ""
    monkeypatch.setattr(pg_facts, "connect", refuse)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    args = {"fail_on_unreachable": False, "data_directory": str(tmp_path), "bin_directory": "/usr/lib/postgresql/15/bin"}
    result = run(monkeypatch, pg_node_info, args)
    assert result["stopped_timeline"] == 4 and result["stopped_state"] == "shut down", result
    assert ran == [(["/usr/lib/postgresql/15/bin/pg_controldata", str(tmp_path)], {"LC_ALL": "C"})]
    result = run(monkeypatch, pg_node_info, dict(args, data_directory=str(tmp_path / "absent")))
    assert "stopped_timeline" not in result and len(ran) == 1


def test_failover_plan_decides_and_refuses_without_touching_anything(monkeypatch):
    down = {"reachable": False}
    nodes = {"a": down, "b": dict(node(), received_lsn_bytes=10), "c": dict(node(), received_lsn_bytes=20)}
    result = run(monkeypatch, failover_plan, {"nodes": nodes, "failed_node": "a"})
    assert result["action"] == "promote" and result["candidate"] == "c" and not result["changed"]
    result = run(monkeypatch, failover_plan, {"nodes": nodes, "failed_node": "a", "candidate": "b"})
    assert result["failed"] and "candidate" in result["msg"]


class FakePcp:
    def __init__(self, status):
        self.status, self.calls = status, []

    def node_info(self):
        return [{"node_id": 0, "hostname": "10.0.0.1", "port": 5432, "status": self.status, "role": "standby"}]

    def attach(self, node_id):
        self.calls.append(("attach", node_id))
        self.status = "up"


@pytest.mark.parametrize("status, check_mode, changed, calls", [
    ("down", True, True, []),
    ("down", False, True, [("attach", 0)]),
    ("up", False, False, []),
])
def test_pgpool_node_attach_is_idempotent_and_honours_check_mode(monkeypatch, status, check_mode, changed, calls):
    pcp = FakePcp(status)
    monkeypatch.setattr(pgpool_node, "pcp_from_params", lambda module: pcp)
    monkeypatch.setattr(pgpool_node, "act", lambda pcp_, params: pcp_.attach(params["node_id"]))
    result = run(monkeypatch, pgpool_node, {"node_id": 0, "state": "attached", "pcp_host": "localhost",
                                            "_ansible_check_mode": check_mode})
    assert not result["failed"] and result["changed"] == changed and pcp.calls == calls


def test_pgpool_node_refuses_an_unknown_backend(monkeypatch):
    monkeypatch.setattr(pgpool_node, "pcp_from_params", lambda module: FakePcp("up"))
    result = run(monkeypatch, pgpool_node, {"node_id": 5, "pcp_host": "localhost"})
    assert result["failed"] and "no backend with node_id 5" in result["msg"]


class FollowServer:
    """A fake primary and standby at the module_utils boundary: pg_follow's SQL against state."""

    def __init__(self):
        self.slots = {}
        self.standby = {"primary_conninfo": "host=10.0.0.1 port=5432 user=replicator application_name=pg2",
                        "primary_slot_name": "pg2", "in_recovery": True}
        self.primary_in_recovery = False
        self.receiver = {"status": "streaming", "sender_host": "10.0.0.1"}
        self.statements = []


@pytest.fixture
def follow_world(monkeypatch):
    from ansible_collections.pgha.cluster.plugins.module_utils import replication
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    world = FollowServer()

    class Conn(FakeConn):
        def __init__(self, params):
            self.primary = bool(params.get("login_host"))  # the standby is the local socket

    def query_one(conn, sql, args=None):
        if "pg_is_in_recovery() AS in_recovery" in sql and "primary_conninfo" not in sql:
            return {"in_recovery": world.primary_in_recovery if conn.primary else True}
        if "FROM pg_replication_slots" in sql:
            return world.slots.get(args[0])
        if "primary_conninfo" in sql:
            return dict(world.standby)
        if "pg_stat_wal_receiver" in sql:
            return dict(world.receiver)
        raise AssertionError(sql)

    def query(conn, sql, args=None):
        world.statements.append(sql)
        if "pg_drop_replication_slot" in sql:
            world.slots.pop(args[0], None)
        elif "pg_create_physical_replication_slot" in sql:
            assert args[0] not in world.slots, "slot created twice"
            world.slots[args[0]] = {"active": False, "useless": False}
        elif sql.startswith("ALTER SYSTEM SET primary_conninfo"):
            world.standby["primary_conninfo"] = args[0]
        elif sql.startswith("ALTER SYSTEM SET primary_slot_name"):
            world.standby["primary_slot_name"] = args[0]
        elif "pg_reload_conf" in sql and world.standby["primary_conninfo"].startswith("host=10.0.0.2"):
            world.receiver = {"status": "streaming", "sender_host": "10.0.0.2"}
        return []

    monkeypatch.setattr(pg_follow, "connect", Conn)
    monkeypatch.setattr(replication.postgres, "query_one", query_one)
    monkeypatch.setattr(replication.postgres, "query", query)
    return world


FOLLOW = {"primary_host": "10.0.0.2", "replication_user": "replicator", "slot_name": "pg2", "wait_timeout": 1}


def test_pg_follow_creates_the_slot_repoints_and_waits(monkeypatch, follow_world):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    result = run(monkeypatch, pg_follow, FOLLOW)
    assert not result["failed"] and result["changed"] and result["slot_created"] and result["repointed"]
    assert result["streaming"] and list(follow_world.slots) == ["pg2"]
    assert follow_world.standby["primary_conninfo"] == "host=10.0.0.2 port=5432 user=replicator application_name=pg2"
    assert result["diff"]["before"]["primary_conninfo"].startswith("host=10.0.0.1")


def test_pg_follow_a_second_run_changes_nothing(monkeypatch, follow_world):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    run(monkeypatch, pg_follow, FOLLOW)
    follow_world.statements.clear()
    result = run(monkeypatch, pg_follow, FOLLOW)
    assert not result["changed"] and result["streaming"] and follow_world.statements == []


@pytest.mark.parametrize("slot, replaced", [({"active": False, "useless": True}, True),   # invalidated / unreserved
                                            ({"active": True, "useless": True}, False),   # someone streams from it
                                            ({"active": False, "useless": False}, False)])
def test_pg_follow_replaces_a_slot_that_keeps_no_wal(monkeypatch, follow_world, slot, replaced):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    follow_world.slots["pg2"] = dict(slot)
    result = run(monkeypatch, pg_follow, dict(FOLLOW, repoint=False, wait_timeout=0))
    assert result["slot_created"] == replaced
    assert any("pg_drop_replication_slot" in sql for sql in follow_world.statements) == replaced
    assert follow_world.slots["pg2"] == ({"active": False, "useless": False} if replaced else slot)


def test_pg_follow_check_mode_changes_nothing(monkeypatch, follow_world):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    result = run(monkeypatch, pg_follow, dict(FOLLOW, _ansible_check_mode=True))
    assert result["changed"] and result["slot_created"] and result["repointed"]
    assert follow_world.statements == [] and not follow_world.slots and not result["streaming"]


def test_pg_follow_refuses_a_primary_that_is_no_longer_one(monkeypatch, follow_world):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    follow_world.primary_in_recovery = True
    result = run(monkeypatch, pg_follow, FOLLOW)
    assert result["failed"] and "not a primary" in result["msg"] and follow_world.statements == []


def test_pg_follow_refuses_to_repoint_a_primary(monkeypatch, follow_world):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    follow_world.standby["in_recovery"] = False
    result = run(monkeypatch, pg_follow, dict(FOLLOW, create_slot=False))
    assert result["failed"] and "is a primary" in result["msg"]
    assert not any(s.startswith("ALTER SYSTEM") for s in follow_world.statements)


def test_pg_follow_fails_when_the_standby_does_not_stream(monkeypatch, follow_world):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    result = run(monkeypatch, pg_follow, dict(FOLLOW, primary_host="10.0.0.3", wait_timeout=1))
    assert result["failed"] and "does not stream from 10.0.0.3" in result["msg"]


def test_pg_follow_slot_only(monkeypatch, follow_world):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    result = run(monkeypatch, pg_follow, dict(FOLLOW, repoint=False, wait_timeout=0))
    assert result["changed"] and result["slot_created"] and not result["repointed"]
    assert follow_world.standby["primary_conninfo"].startswith("host=10.0.0.1")


def test_pg_follow_cascades_from_a_standby_only_when_asked(monkeypatch, follow_world):
    from ansible_collections.pgha.cluster.plugins.modules import pg_follow
    follow_world.primary_in_recovery = True
    result = run(monkeypatch, pg_follow, dict(FOLLOW, cascade=True))
    assert not result["failed"] and result["slot_created"] and result["repointed"] and result["streaming"]
