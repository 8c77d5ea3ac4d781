"""What pgpool's hook does after a refused failover (pgpool asks only once): attach the primary
again when it answers, try the failover again while it does not, and tell pgpool the new
primary when a retry promotes one. The hook is loaded from its file; the survey, the
failover's steps and pcp are replaced by callables that record what was asked (the lab test
test_operations_retry runs the real ones)."""
import importlib.util

import pytest

from collection_path import REPO

NODES = [{"name": "a", "address": "10.0.0.1", "port": 5432}, {"name": "b", "address": "10.0.0.2", "port": 5432},
         {"name": "c", "address": "10.0.0.3", "port": 5432}]
DOWN = {"reachable": False, "in_recovery": None}
STANDBY = {"reachable": True, "in_recovery": True}
PRIMARY = {"reachable": True, "in_recovery": False}


class Clock:
    """time.time / time.sleep / time.monotonic on a clock that only sleeping moves."""

    def __init__(self):
        self.now = 1000.0

    def time(self):
        return self.now

    monotonic = time

    def sleep(self, seconds):
        self.now += seconds


class Pcp:
    def __init__(self, asked):
        self.asked = asked

    def promote(self, node_id):
        self.asked.append(("promote", node_id))


@pytest.fixture()
def hook(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("pgha_hook", REPO / "roles" / "pgpool" / "files" / "pgha_hook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    monkeypatch.setattr(module, "time", Clock())
    module.test_config = {"nodes": NODES, "lock_path": str(tmp_path / "hook"), "maintenance_file": str(tmp_path / "m")}
    return module


def scripted(hook, monkeypatch, surveys, results):
    """Each survey and failover result in turn (the last repeats); returns what was asked."""
    asked = []
    surveys, results = list(surveys), list(results)
    monkeypatch.setattr(hook, "survey", lambda config, pg_facts: surveys.pop(0) if len(surveys) > 1 else surveys[0])

    def run_failover(config, failed, candidate=None, force=False, detach=False):
        asked.append(("failover", failed, hook.time.time()))
        return results.pop(0) if len(results) > 1 else results[0]

    monkeypatch.setattr(hook, "run_failover", run_failover)
    monkeypatch.setattr(hook, "pcp_client", lambda config: Pcp(asked))
    monkeypatch.setattr(hook, "attached", lambda config, node, node_id: asked.append(("attach", node_id)) or True)
    return asked


def test_a_refused_failover_is_retried_until_it_promotes_and_pgpool_is_told(hook, monkeypatch):
    refused = {"result": "refused", "reason": "only b of 3 servers run"}
    promoted = {"result": "promoted", "candidate": "b", "reason": "a stopped itself"}
    asked = scripted(hook, monkeypatch, [{"a": DOWN, "b": STANDBY, "c": DOWN}],
                     [refused, refused, promoted])
    started = hook.time.time()
    assert hook.reattach(hook.test_config, {"node_id": "0"}) == 0
    retries = [step[2] - started for step in asked if step[0] == "failover"]
    assert retries == [5, 15, 35]     # 5, 10 and 20 s apart (failover_flow.RETRY_SECONDS)
    assert asked[-1] == ("promote", "1")


def test_no_retry_while_a_planned_operation_pauses_the_hook(hook, monkeypatch, tmp_path):
    (tmp_path / "m").write_text("maintenance")
    asked = scripted(hook, monkeypatch, [{"a": DOWN, "b": STANDBY, "c": STANDBY}],
                     [{"result": "promoted", "candidate": "b", "reason": "x"}])
    assert hook.reattach(hook.test_config, {"node_id": "0"}, timeout=60) == 1
    assert asked == []


@pytest.mark.parametrize("facts, outcome, asked_first", [
    ({"a": PRIMARY, "b": STANDBY, "c": STANDBY}, 0, ("attach", "0")),   # the cut healed: it is back
    ({"a": DOWN, "b": PRIMARY, "c": STANDBY}, 1, None),                 # an operator promoted b
])
def test_a_primary_that_answers_again_is_attached_and_one_replaced_is_left_alone(hook, monkeypatch, facts,
                                                                                 outcome, asked_first):
    asked = scripted(hook, monkeypatch, [facts], [{"result": "promoted", "candidate": "b", "reason": "x"}])
    assert hook.reattach(hook.test_config, {"node_id": "0"}) == outcome
    assert asked[:1] == ([asked_first] if asked_first else [])
