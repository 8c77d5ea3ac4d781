"""What pgpool's hook does after a refused failover (pgpool asks only once): attach the primary
again when it answers, try the failover again while it does not, and tell pgpool the new
primary when a retry promotes one. The hook is loaded from its file; the survey, the
failover's steps and pcp are replaced by callables that record what was asked (the lab test
test_operations_retry runs the real ones)."""
import fcntl
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
    """pgpool's node info for node 1 ("b") as pgpool would show it after each request."""

    def __init__(self, asked, status="up"):
        self.asked, self.status, self.role = asked, status, "standby"

    def node_info(self):
        return [{"status": "down", "role": "primary"}, {"status": self.status, "role": self.role}, {}]

    def attach(self, node_id):
        self.asked.append(("attach", node_id))
        self.status = "up"

    def promote(self, node_id):
        self.asked.append(("promote", node_id))
        self.role = "primary"


@pytest.fixture()
def hook(monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("pgha_hook", REPO / "roles" / "pgpool" / "files" / "pgha_hook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "log", lambda *args, **kwargs: None)
    monkeypatch.setattr(module, "time", Clock())
    module.test_config = {"nodes": NODES, "lock_path": str(tmp_path / "hook"), "maintenance_file": str(tmp_path / "m")}
    return module


def scripted(hook, monkeypatch, surveys, results, pgpool_status="up"):
    """Each survey and failover result in turn (the last repeats); returns what was asked."""
    asked = []
    surveys, results = list(surveys), list(results)
    pcp = Pcp(asked, pgpool_status)
    monkeypatch.setattr(hook, "survey", lambda config, pg_facts: surveys.pop(0) if len(surveys) > 1 else surveys[0])

    def run_failover(config, failed, candidate=None, force=False, detach=False):
        with open(config["lock_path"] + ".failover", "a") as lock:   # the failover lock is held
            with pytest.raises(OSError):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        asked.append(("failover", failed, hook.time.time()))
        return results.pop(0) if len(results) > 1 else results[0]

    monkeypatch.setattr(hook, "run_failover", run_failover)
    monkeypatch.setattr(hook, "pcp_client", lambda config: pcp)
    monkeypatch.setattr(hook, "attached", lambda config, node, node_id: asked.append(("attach", node_id)) or True)
    return asked


REFUSED = {"result": "refused", "reason": "only b of 3 servers run"}
PROMOTED = {"result": "promoted", "candidate": "b", "reason": "a stopped itself"}


def test_a_refused_failover_is_retried_until_it_promotes_and_pgpool_takes_the_new_primary(hook, monkeypatch):
    asked = scripted(hook, monkeypatch, [{"a": DOWN, "b": STANDBY, "c": DOWN}], [REFUSED, REFUSED, PROMOTED])
    started = hook.time.time()
    assert hook.retry(hook.test_config, {"node_id": "0"}) == 0
    retries = [step[2] - started for step in asked if step[0] == "failover"]
    assert retries == [5, 15, 35]     # 5, 10 and 20 s apart (failover_flow.RETRY_SECONDS)
    assert asked[-1] == ("promote", "1")


def test_pgpool_gets_the_new_primary_attached_first_when_it_has_it_down(hook, monkeypatch):
    asked = scripted(hook, monkeypatch, [{"a": DOWN, "b": STANDBY, "c": STANDBY}], [PROMOTED], pgpool_status="down")
    assert hook.retry(hook.test_config, {"node_id": "0"}) == 0
    assert asked[-2:] == [("attach", "1"), ("promote", "1")]


def test_a_primary_whose_host_answers_gets_time_to_come_back_before_a_retry(hook, monkeypatch):
    starting = {"reachable": False, "in_recovery": None, "host_answers": True}
    asked = scripted(hook, monkeypatch, [{"a": starting, "b": STANDBY, "c": STANDBY}], [PROMOTED])
    started = hook.time.time()
    assert hook.retry(hook.test_config, {"node_id": "0"}) == 0
    assert [step[2] - started for step in asked if step[0] == "failover"] == [60]   # COMEBACK_SECONDS


def test_no_retry_while_a_planned_operation_pauses_the_hook(hook, monkeypatch, tmp_path):
    (tmp_path / "m").write_text("maintenance")
    asked = scripted(hook, monkeypatch, [{"a": DOWN, "b": STANDBY, "c": STANDBY}], [PROMOTED])
    assert hook.retry(hook.test_config, {"node_id": "0"}) == 1
    assert asked == []


def test_a_refusal_that_was_not_the_primarys_is_never_retried(hook, monkeypatch):
    asked = scripted(hook, monkeypatch, [{"a": DOWN, "b": STANDBY, "c": STANDBY}], [PROMOTED])
    assert hook.reattach(hook.test_config, {"node_id": "0"}) == 1
    assert asked == []


def test_one_process_per_node(hook, monkeypatch):
    asked = scripted(hook, monkeypatch, [{"a": DOWN, "b": STANDBY, "c": STANDBY}], [PROMOTED])
    with open(hook.test_config["lock_path"] + ".retry.a", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert hook.retry(hook.test_config, {"node_id": "0"}) == 0
    assert asked == []


@pytest.mark.parametrize("facts, outcome, asked_first", [
    ({"a": PRIMARY, "b": STANDBY, "c": STANDBY}, 0, ("attach", "0")),   # the cut healed: it is back
    ({"a": DOWN, "b": PRIMARY, "c": STANDBY}, 1, None),                 # an operator promoted b
])
def test_a_primary_that_answers_again_is_attached_and_one_replaced_is_left_alone(hook, monkeypatch, facts,
                                                                                 outcome, asked_first):
    asked = scripted(hook, monkeypatch, [facts], [PROMOTED])
    assert hook.retry(hook.test_config, {"node_id": "0"}) == outcome
    assert asked[:1] == ([asked_first] if asked_first else [])
