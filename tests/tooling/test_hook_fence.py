"""How pgpool's hook fences a node: over the standing ssh link when the node's host answers,
with the power fence at once beside ssh when it is silent. The hook is a program on the
nodes (roles/pgpool/files), loaded here from its file; ssh and the fence_command are
replaced by callables that record what was asked (the lab tests run the real ones)."""
import importlib.util
import threading
import types

import pytest

from collection_path import REPO

CONFIG = {"fence_command": ["/bin/true"], "ssh_link_dir": "/links", "layout": {}, "fence_lock_file": "/x"}
NODE = {"name": "a", "address": "10.0.0.1", "port": 5432}
VERIFIED = {"kind": "primary", "timeline": 3}
# fencing.fence_plan's answers (table-tested in tests/unit)
ANSWERS = {"link": True, "power_at_once": False}
SILENT = {"link": False, "power_at_once": True}
SILENT_NO_COMMAND = {"link": False, "power_at_once": False}


@pytest.fixture()
def hook(monkeypatch):
    spec = importlib.util.spec_from_file_location("pgha_hook", REPO / "roles" / "pgpool" / "files" / "pgha_hook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    return module


def test_a_node_whose_host_answers_is_fenced_over_the_link_and_never_powered_off(hook, monkeypatch):
    asked = []
    monkeypatch.setattr(hook, "fence_over_ssh", lambda config, node, reason, connect_timeout, link=False: (
        asked.append(("ssh", link)) or (VERIFIED, "PGHA-FENCED primary 3")))
    monkeypatch.setattr(hook, "stonith", lambda config, node: asked.append(("power",)) or True)
    assert hook.fence_node(CONFIG, NODE, "test", ANSWERS) == VERIFIED
    assert asked == [("ssh", True)]


def test_a_node_whose_host_answers_is_powered_off_only_when_ssh_fails(hook, monkeypatch):
    asked = []
    monkeypatch.setattr(hook, "fence_over_ssh", lambda *args, **kwargs: asked.append("ssh") or (None, "refused"))
    monkeypatch.setattr(hook, "stonith", lambda config, node: asked.append("power") or True)
    assert hook.fence_node(CONFIG, NODE, "test", ANSWERS)["powered_off"]
    assert asked == ["ssh", "power"]


def test_a_silent_node_is_powered_off_without_waiting_for_ssh(hook, monkeypatch):
    ssh_may_end, ssh_link = threading.Event(), []

    def slow_ssh(config, node, reason, connect_timeout, link=False):
        ssh_link.append(link)
        ssh_may_end.wait(10)     # ssh towards a silent host: it tells only after its timeout
        return None, "timed out"

    monkeypatch.setattr(hook, "fence_over_ssh", slow_ssh)
    monkeypatch.setattr(hook, "stonith", lambda config, node: True)
    try:
        result = hook.fence_node(CONFIG, NODE, "test", SILENT)
        assert result == {"kind": "primary", "timeline": None, "powered_off": True}
        assert not ssh_may_end.is_set() and ssh_link == [False]   # answered while ssh still waited, no link
    finally:
        ssh_may_end.set()


def test_a_silent_node_without_a_fence_command_is_tried_over_ssh_only(hook, monkeypatch):
    asked = []
    monkeypatch.setattr(hook, "fence_over_ssh", lambda *args, **kwargs: asked.append("ssh") or (None, "timed out"))
    monkeypatch.setattr(hook, "stonith", lambda config, node: asked.append("power") or False)
    assert hook.fence_node(dict(CONFIG, fence_command=[]), NODE, "test", SILENT_NO_COMMAND) is None
    assert asked == ["ssh", "power"]     # stonith() itself says no without a command


@pytest.mark.parametrize("results, expected", [([None, None], None), ([None, "b"], "b"), (["a", None], "a")])
def test_first_verified_is_the_first_result_that_is_not_none(hook, results, expected):
    assert hook.first_verified([lambda r=r: r for r in results], 5) == expected


def test_first_verified_survives_an_attempt_that_raises(hook):
    def broken():
        raise RuntimeError("no")
    assert hook.first_verified([broken, lambda: "b"], 5) == "b"


def test_a_fence_command_that_exits_0_while_the_host_still_answers_does_not_count(hook):
    """A command that lied (or only moved an address): the node's host still takes or refuses
    TCP connections right after it, so it is not counted as powered off."""
    import socket
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))   # bound, not listening: connections are refused
    try:
        for port in (listening.getsockname()[1], closed.getsockname()[1]):
            assert hook.stonith(CONFIG, dict(NODE, address="127.0.0.1", port=port)) is False
        assert hook.stonith(dict(CONFIG, fence_command=["/bin/false"]), NODE) is False
    finally:
        listening.close()
        closed.close()


def test_a_fence_command_that_exits_0_for_a_silent_host_counts(hook):
    """A host that neither accepts nor refuses: a listening socket whose accept queue is full
    drops further connection attempts, as a powered-off host's address does."""
    import socket
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    waiting = []
    for _ in range(3):
        pending = socket.socket()
        pending.setblocking(False)
        pending.connect_ex(full.getsockname())
        waiting.append(pending)
    try:
        assert hook.stonith(CONFIG, dict(NODE, address="127.0.0.1", port=full.getsockname()[1])) is True
    finally:
        for sock in waiting + [full]:
            sock.close()


@pytest.fixture()
def executor(hook, monkeypatch):
    started = []
    monkeypatch.setattr(hook, "start_background", lambda *args: started.append(args))
    executor = hook.Executor({"nodes": [NODE, dict(NODE, name="b", address="10.0.0.2")]}, 0.0, detach=True)
    executor.attempts = {"a": types.SimpleNamespace(result=None, is_alive=lambda: False)}   # failed
    return executor, started


def test_the_detach_starts_the_fence_retries_and_never_forks_beside_a_running_fence_attempt(hook, monkeypatch,
                                                                                          executor):
    executor, started = executor

    def no_fork():
        raise AssertionError("forked while another thread ran")

    monkeypatch.setattr(hook.os, "fork", no_fork)
    running = threading.Event()
    loser = threading.Thread(target=running.wait, args=(10,))
    loser.start()
    try:
        executor.do_detach("b")      # pgpool waits for the remaining steps instead
    finally:
        running.set()
        loser.join()
    assert started == [("fence", "a", "pgha failover")]


@pytest.fixture()
def parent_side(hook, monkeypatch):
    """os.fork returns in the parent, whose os._exit ends the test's call."""
    monkeypatch.setattr(hook.os, "fork", lambda: 1234)

    def parent_exits(code):
        raise SystemExit(code)

    monkeypatch.setattr(hook.os, "_exit", parent_exits)


@pytest.mark.usefixtures("parent_side")
def test_the_detach_forks_and_lets_pgpool_go_on_when_nothing_else_runs(executor):
    executor, started = executor
    with pytest.raises(SystemExit):
        executor.do_detach("b")
    assert started == [("fence", "a", "pgha failover")]   # started before the parent left


@pytest.mark.usefixtures("parent_side")
def test_a_node_the_fence_command_powered_off_gets_its_lock_in_the_background_once_it_is_back(executor):
    executor, started = executor
    executor.attempts, executor.powered_off = {}, {"a"}
    with pytest.raises(SystemExit):
        executor.do_detach("b")
    assert started == [("fence", "a", "pgha failover")]


@pytest.mark.parametrize("standby_from, fenced", [(None, True), (0, False), (2, False)])
def test_the_fence_retry_stops_once_the_node_streams_as_a_standby(hook, monkeypatch, tmp_path, standby_from, fenced):
    """The background retry for a node that did not answer: fenced once ssh reaches it, unless
    it streams as a standby first (rebuilt meanwhile: a fence would tell it to follow nobody)."""
    config = dict(CONFIG, lock_path=str(tmp_path / "lock"), nodes=[NODE], fence_retry_seconds=30)
    attempts = []

    def streams_as_standby(config, node):
        attempts.append("survey")
        return standby_from is not None and len(attempts) > standby_from

    def ssh(config, node, reason, connect_timeout, link=False):
        attempts.append("fence")
        return (VERIFIED if len(attempts) >= 6 else None), "ssh: connection timed out"

    monkeypatch.setattr(hook, "streams_as_standby", streams_as_standby)
    monkeypatch.setattr(hook, "fence_over_ssh", ssh)
    monkeypatch.setattr(hook, "record_on_the_primary", lambda config, node: attempts.append("record"))
    monkeypatch.setattr(hook.time, "sleep", lambda seconds: None)
    assert hook.fence_until_done(config, {"node": "a", "reason": "test"}) == 0
    assert ("fence" in attempts and attempts[-1] == "record") == fenced, attempts
    assert fenced or attempts[-1] == "survey"


def test_fence_attempts_run_in_the_background_once_and_fence_starts_a_new_one(hook, monkeypatch):
    """fence_background starts an attempt for a node never tried and returns at once (wait:
    once it ended); fence starts a new one and waits for it."""
    calls, entered, release = [], threading.Event(), threading.Event()

    def fence_node(config, node, reason, plan):
        calls.append(node["name"])
        entered.set()
        release.wait(10)
        return {"kind": "primary", "timeline": 1} if len(calls) > 1 else None

    monkeypatch.setattr(hook, "fence_node", fence_node)
    executor = hook.Executor({"nodes": [NODE]}, 0.0)
    assert executor.do_fence_background(["a"], False) == {}     # running: nothing verified yet
    assert entered.wait(5)
    assert executor.do_fence_background(["a"], False) == {} and calls == ["a"]
    release.set()
    assert executor.do_fence_background(["a"], True) == {} and calls == ["a"]    # ended, failed: not tried again
    assert executor.do_fence(["a"]) == {"a": {"kind": "primary", "timeline": 1}} and calls == ["a", "a"]


def test_a_survey_reads_every_node_but_those_whose_facts_stand(hook, monkeypatch):
    seen = []
    monkeypatch.setattr(hook, "survey", lambda config, pg_facts, known: seen.append(dict(known)) or dict(
        known, b={"reachable": True}))
    executor = hook.Executor({"nodes": [NODE, dict(NODE, name="b", address="10.0.0.2")]}, 0.0)
    executor.facts = {"a": {"reachable": False, "host_answers": False}, "b": {"reachable": True}}
    executor.do_survey(["a"])
    assert seen == [{"a": {"reachable": False, "host_answers": False}}]
