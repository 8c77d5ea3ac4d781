"""pg_switchover's argument handling, refusals, check-mode result and hand-over, with a fake
target connection and a fake local server (systemctl and pg_controldata)."""
import pytest
from ansible.module_utils import basic

from collection_path import FIXTURES

from ansible_collections.pgha.cluster.plugins.module_utils import postgres
from ansible_collections.pgha.cluster.plugins.modules import pg_switchover
from ansible_collections.pgha.cluster.tests.unit.plugins.modules.module_harness import FakeConn, node, run

LOCAL_SYSID = "7711891075466020888"
ARGS = {"login_host": "10.0.0.2", "service": "postgresql@15-main", "data_directory": "/var/lib/postgresql/15/main",
        "bin_directory": "/usr/lib/postgresql/15/bin"}
STREAMING = {"status": "streaming", "sender_host": "10.0.0.1", "sender_port": 5432}


def controldata(name):
    return (FIXTURES / "pg15" / ("controldata-%s.txt" % name)).read_text()


class LocalPrimary:
    """systemctl and pg_controldata of the server the module runs on; records what was run."""

    def __init__(self):
        self.active, self.clean_stop, self.commands = True, True, []

    def run_command(self, argv):
        if argv[0] == "systemctl" and argv[1] == "is-active":
            return 0, "active\n" if self.active else "inactive\n", ""
        if argv[0] == "systemctl":
            self.commands.append(argv[1])
            self.active = argv[1] == "start"
            return 0, "", ""
        if not self.active and self.clean_stop:
            return 0, controldata("primary-shut-down"), ""
        return 0, controldata("primary-running"), ""


@pytest.fixture
def world(monkeypatch):
    """A running local primary and a target standby streaming from it."""
    local = LocalPrimary()
    state = {"local": local, "target": node(receiver=STREAMING, sysid=LOCAL_SYSID, timeline=4),
             "wal_arrives": True, "waited_for": [], "promoted": []}
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda module, argv, **kwargs: local.run_command(argv))
    monkeypatch.setattr(pg_switchover, "connect", lambda params: FakeConn())
    monkeypatch.setattr(pg_switchover, "read_facts", lambda conn: state["target"])

    def wait_for_wal(conn, lsn, timeout):
        state["waited_for"].append(lsn)
        if not state["wal_arrives"]:
            raise RuntimeError("the target did not receive %s within %d s" % (lsn, timeout))

    def promote(conn, timeout, checkpoint):
        state["promoted"].append(checkpoint)
        state["target"] = node("primary", sysid=LOCAL_SYSID, timeline=5)
        return 0.1
    monkeypatch.setattr(pg_switchover, "wait_for_wal", wait_for_wal)
    monkeypatch.setattr(pg_switchover, "promote", promote)
    return state


def test_pg_switchover_stops_the_primary_and_promotes_the_target_past_its_checkpoint(monkeypatch, world):
    result = run(monkeypatch, pg_switchover, ARGS)
    assert not result["failed"] and result["changed"] and result["timeline"] == 5
    assert result["checkpoint_lsn"] == "0/409F118" and world["waited_for"] == ["0/409F118"]
    assert world["local"].commands == ["stop"] and world["promoted"] == [True]
    assert result["diff"]["after"] == {"target": {"role": "primary", "timeline": 5}, "local": {"role": "stopped"}}


def test_pg_switchover_check_mode_stops_nothing(monkeypatch, world):
    result = run(monkeypatch, pg_switchover, dict(ARGS, _ansible_check_mode=True))
    assert not result["failed"] and result["changed"] and result["checkpoint_lsn"] == ""
    assert world["local"].commands == [] and world["promoted"] == []
    assert result["diff"]["after"]["target"] == {"role": "primary", "timeline": 5}


def test_pg_switchover_that_already_ran_is_a_no_op(monkeypatch, world):
    world["local"].active = False
    world["target"] = node("primary", sysid=LOCAL_SYSID, timeline=5)
    result = run(monkeypatch, pg_switchover, ARGS)
    assert not result["failed"] and not result["changed"] and result["timeline"] == 5
    assert world["local"].commands == [] and world["promoted"] == []


@pytest.mark.parametrize("target, local_active, words", [
    (node(receiver=STREAMING, sysid="1", timeline=4), True, "system identifier 1 is not this server's"),
    (node(sysid=LOCAL_SYSID, timeline=4), True, "not a streaming standby (role standby, receiver down)"),
    (node("primary", sysid=LOCAL_SYSID, timeline=4), True, "not a streaming standby (role primary"),
    (node(receiver=STREAMING, sysid=LOCAL_SYSID, timeline=4), False, "there is no primary to hand over from"),
])
def test_pg_switchover_refusals_stop_nothing(monkeypatch, world, target, local_active, words):
    world["target"], world["local"].active = target, local_active
    result = run(monkeypatch, pg_switchover, ARGS)
    assert result["failed"] and words in result["msg"] and result["msg"].startswith("refused, nothing changed")
    assert world["local"].commands == [] and world["promoted"] == []


def test_pg_switchover_refuses_an_unreachable_target(monkeypatch, world):
    def refuse(params):
        raise postgres.PgConnectError("cannot connect to 10.0.0.2:5432")
    monkeypatch.setattr(pg_switchover, "connect", refuse)
    result = run(monkeypatch, pg_switchover, ARGS)
    assert result["failed"] and "cannot connect to 10.0.0.2" in result["msg"] and world["local"].commands == []


@pytest.mark.parametrize("clean_stop, wal_arrives, words", [
    (False, True, "did not shut down cleanly"),
    (True, False, "did not receive 0/409F118"),
])
def test_pg_switchover_starts_the_old_primary_again_when_the_target_may_lack_wal(
        monkeypatch, world, clean_stop, wal_arrives, words):
    world["local"].clean_stop, world["wal_arrives"] = clean_stop, wal_arrives
    result = run(monkeypatch, pg_switchover, ARGS)
    assert result["failed"] and words in result["msg"] and "started again" in result["msg"]
    assert world["local"].commands == ["stop", "start"] and world["promoted"] == []


def test_pg_switchover_requires_its_local_server(monkeypatch, world):
    result = run(monkeypatch, pg_switchover, {"login_host": "10.0.0.2", "timeout": "soon"})
    assert result["failed"] and "service" in result["msg"] and world["local"].commands == []
