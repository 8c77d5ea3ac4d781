"""The node guard (roles/postgresql/files/pgha_guard.py, loaded from its file): its read of
the server in a thread of its own, its saved lease state, and its pause: a
planned operation's marker pauses a primary's lease only while the node reaches a majority
of the cluster's hosts. A playbook cannot remove its marker from a primary that was cut off,
while the others, no longer paused, may promote. The peers here are real sockets: one that
listens, one refused port, one whose accept queue is full (its host drops the connection
attempt, as a host cut away or powered off does)."""
import importlib.util
import socket
import time

import pytest

from collection_path import REPO
from ansible_collections.pgha.cluster.plugins.module_utils import pg_facts, safety

@pytest.fixture()
def guard(monkeypatch):
    spec = importlib.util.spec_from_file_location("pgha_guard", REPO / "roles" / "postgresql" / "files" / "pgha_guard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "paused", lambda config: "operation")
    return module


@pytest.fixture()
def listening():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture()
def silent():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        queued = socket.create_connection(("127.0.0.1", port), 1)   # fills the queue: later SYNs are dropped
        try:
            yield port
        finally:
            queued.close()


def refused_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]     # closed again: a connection is refused


def config(peers):
    nodes = [{"name": "self", "address": "127.0.0.1", "port": 1}] + [
        {"name": "peer%d" % i, "address": address, "port": port} for i, (address, port) in enumerate(peers)]
    return {"nodes": nodes, "name": "self", "enforce": True}


def test_a_marker_pauses_the_lease_of_a_primary_that_reaches_its_peers(guard, listening):
    assert guard.pause_in_force(config([("127.0.0.1", listening), ("127.0.0.1", refused_port())]), "primary",
                                pg_facts, safety) == (True, None)


def test_a_marker_pauses_the_lease_while_one_peer_of_two_answers(guard, listening, silent):
    assert guard.pause_in_force(config([("127.0.0.1", listening), ("127.0.0.1", silent)]), "primary",
                                pg_facts, safety) == (True, None)


def test_a_marker_left_on_a_cut_off_primary_does_not_pause_its_lease(guard, silent):
    started = time.monotonic()
    in_force, why = guard.pause_in_force(config([("127.0.0.1", silent)] * 2), "unknown", pg_facts, safety)
    assert time.monotonic() - started < 0.5, "the probes must fit in one beat of the guard"
    assert not in_force and "only 0 of 2 peers' hosts answer: the lease applies" in why


def test_a_marker_pauses_a_standby_and_a_two_node_cluster_without_probes(guard, monkeypatch, silent):
    monkeypatch.setattr(guard, "peers_answering", lambda *args: pytest.fail("probed"))
    assert guard.pause_in_force(config([("127.0.0.1", silent)] * 2), "standby", pg_facts, safety) == (True, None)
    assert guard.pause_in_force(config([("127.0.0.1", silent)]), "primary", pg_facts, safety) == (True, None)


def test_the_bootstrap_marker_pauses_a_first_primary_without_probes(guard, monkeypatch, silent):
    """A new cluster's first primary: no standby exists that could be promoted beside it."""
    monkeypatch.setattr(guard, "paused", lambda config: "bootstrap")
    monkeypatch.setattr(guard, "peers_answering", lambda *args: pytest.fail("probed"))
    assert guard.pause_in_force(config([("127.0.0.1", silent)] * 2), "primary", pg_facts, safety) == (True, None)


def test_without_a_marker_nothing_pauses(guard, monkeypatch):
    monkeypatch.setattr(guard, "paused", lambda config: None)
    assert guard.pause_in_force(config([("127.0.0.1", refused_port())] * 2), "primary", pg_facts, safety) == (
        False, None)


LEASE = {"lease_seconds": 3.0, "guard_interval": 0.05}


def test_a_read_that_hangs_does_not_hold_up_the_beat(guard):
    """A frozen postmaster: the beat goes on with the newest read (the lease runs on), and a
    read that ends late counts from when it began."""
    import threading
    release, reads = threading.Event(), []

    def read():
        reads.append(guard.clock())
        release.wait(10)
        return "primary", {"b": "t%d" % len(reads)}, {}

    reader = guard.Reader(read, LEASE["guard_interval"])
    try:
        reader.wait_first(0.2)
        assert guard.current_read(reader, guard.clock(), LEASE) == (None, "unknown", {}, {})
        assert len(reads) == 1, "a second read began beside the hung one"
        release.set()
        reader.wait_first(1.0)
        observed_at, role, replies, unused = guard.current_read(reader, guard.clock(), LEASE)
        assert role == "primary" and any(0 <= r - observed_at < 0.05 for r in reads)   # dated from a read's start
        # no read for longer than the lease: the server does not answer its guard
        assert guard.current_read(reader, observed_at + LEASE["lease_seconds"] + 0.1, LEASE)[1] == "unknown"
    finally:
        release.set()
        reader.stop()


def test_a_read_that_fails_raises_in_the_guard(guard):
    def read():
        raise ValueError("bug")

    reader = guard.Reader(read, LEASE["guard_interval"])
    reader.wait_first(1.0)
    with pytest.raises(ValueError):
        reader.latest()


def test_a_guard_restarted_after_a_crash_keeps_its_lease_and_the_replies_it_saw(guard, tmp_path):
    """A WAL sender's row stays after its standby was cut away (until wal_sender_timeout): a
    restarted guard must not take its old reply_time for a new confirmation."""
    config = {"state_file": str(tmp_path / "state.json")}
    now = guard.clock()
    guard.save_state(config, {"majority_at": now - 2.0, "read_at": now - 0.5, "replies": {"b": "t1"}}, now)
    state = guard.restored_state(config, guard.clock(), 3.0)
    assert state["replies"] == {"b": "t1"} and 1.9 < guard.clock() - state["majority_at"] < 2.5
    assert safety.guard_step(state, "primary", {"b": "t1"}, guard.clock(), 3, dict(safety.DEFAULT_LEASE))[0][
        "confirmed"] == {}, "the old reply counted again"


@pytest.mark.parametrize("postmaster_started, restored", [(None, False), (-5, True), (+5, False)])
def test_a_guard_gone_longer_than_a_lease_keeps_its_expired_lease_while_the_postmaster_ran_all_along(
        guard, tmp_path, monkeypatch, postmaster_started, restored):
    """A crash loop or a hang renews nothing: only a postmaster started since (through the start
    guard, confirmed by a majority) or none at all makes the guard start over."""
    import json
    config = {"state_file": str(tmp_path / "state.json"), "layout": {"datadir": str(tmp_path)}}
    now = guard.clock()
    guard.save_state(config, {"majority_at": now - 2.0, "read_at": now, "replies": {"b": "t1"}}, now)
    saved = json.loads((tmp_path / "state.json").read_text())
    saved["saved_at"] -= 10
    saved["majority_at"] -= 10
    (tmp_path / "state.json").write_text(json.dumps(saved))
    monkeypatch.setattr(guard, "postmaster_started_at", lambda datadir: None if postmaster_started is None
                        else saved["saved_at"] + postmaster_started)
    state = guard.restored_state(config, guard.clock(), 3.0)
    assert bool(state) is restored
    if restored:
        unused, action, reason = safety.guard_step(state, "primary", {"b": "t1"}, guard.clock(), 3,
                                                   dict(safety.DEFAULT_LEASE))
        assert action == "fence", reason


def test_the_postmaster_start_is_read_from_proc_in_the_guards_clock(guard, tmp_path):
    import os
    (tmp_path / "postmaster.pid").write_text("%d\n/var/lib/postgresql/15/main\n" % os.getpid())
    started = guard.postmaster_started_at(str(tmp_path))
    assert started is not None and 0 <= guard.clock() - started < 3600
    assert guard.postmaster_started_at(str(tmp_path / "none")) is None


def test_a_guard_after_a_reboot_starts_over_and_a_wall_clock_step_changes_nothing(guard, tmp_path, monkeypatch):
    import json
    import time
    config = {"state_file": str(tmp_path / "state.json")}
    now = guard.clock()
    guard.save_state(config, {"majority_at": now - 2.0, "read_at": now, "replies": {"b": "t1"}}, now)
    monkeypatch.setattr(time, "time", lambda: 4e9)      # the wall clock stepped years ahead
    assert 1.9 < guard.clock() - guard.restored_state(config, guard.clock(), 3.0)["majority_at"] < 2.5
    saved = json.loads((tmp_path / "state.json").read_text())
    saved["boot_id"] = "another boot"
    (tmp_path / "state.json").write_text(json.dumps(saved))
    assert guard.restored_state(config, guard.clock(), 3.0) == {}


def test_the_operators_force_counts_only_while_fresh(guard, tmp_path):
    """start.yml -e force=true writes the file just before the start and removes it after; one
    left by a playbook that died must not let a later start skip the confirmation."""
    import os
    override = tmp_path / "start-override"
    config = {"start_override_file": str(override)}
    assert not guard.start_forced(config)
    override.write_text("start.yml force=true\n")
    assert guard.start_forced(config)
    old = time.time() - guard.START_OVERRIDE_SECONDS - 1
    os.utime(override, (old, old))
    assert not guard.start_forced(config)


@pytest.mark.parametrize("fence_during_probe", [False, True])
def test_a_fence_that_lands_while_the_start_is_decided_stops_the_start(guard, monkeypatch, tmp_path, fence_during_probe):
    """The start guard read no lock, then asked its peers; a fence that wrote the lock
    meanwhile is seen at the last look (after the start's mark), and the start is refused."""
    lock = tmp_path / "fenced"
    cfg = {"fence_lock_file": str(lock), "nodes": [{"name": "self"}, {"name": "peer"}], "name": "self"}
    local = {"name": "self", "standby_signal": False, "fence_lock": None, "timeline": 1}

    def peers(config, pg_facts, postgres):
        if fence_during_probe:
            lock.write_text("fenced by the hook\n")
        return {"peer": {"reachable": True, "in_recovery": True, "follows": "self", "timeline": 1}}

    monkeypatch.setattr(guard, "local_facts", lambda config, instance: dict(local))
    monkeypatch.setattr(guard, "peer_facts", peers)
    monkeypatch.setattr(guard, "arbiter_lease", lambda config: None)
    monkeypatch.setattr(safety, "start_decision", lambda *args, **kwargs: {
        "start": True, "write_lock": False, "retry": False, "reason": "confirmed by peer"})
    assert guard.start_check(cfg, "15-main") == (1 if fence_during_probe else 0)
    # the mark stands for a start that goes on (a fence now waits for its postmaster), not for one refused
    assert (tmp_path / "starting").exists() is not fence_during_probe
