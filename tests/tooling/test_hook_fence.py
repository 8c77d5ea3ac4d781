"""How pgpool's hook fences a node: over the standing ssh link when the node's host answers,
with the power fence at once beside ssh when it is silent. The hook is a program on the
nodes (roles/pgpool/files), loaded here from its file; ssh and the fence_command are
replaced by callables that record what was asked (the lab tests run the real ones)."""
import importlib.util
import threading

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
