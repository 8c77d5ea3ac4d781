"""Table tests of the safety core: the guard's lease, the start guard, the promotion gate,
the synchronous quorum rule and the sync policy; every refusal included."""
import os
import time

import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import safety

LEASE = dict(safety.DEFAULT_LEASE)


def test_majority_and_lease_enforcement():
    assert [safety.majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert not safety.lease_enforced(2) and safety.lease_enforced(3)
    assert safety.revocation_wait(LEASE) == pytest.approx(3.0 * 1.1 + 2 * 0.5 + 1.0)


def beats(replies_per_beat, total=3, start=0.0, step=0.5, paused=False, fenced=()):
    state, results = {}, []
    for i, replies in enumerate(replies_per_beat):
        state, action, reason = safety.guard_step(state, "primary", replies, start + i * step, total, LEASE, paused,
                                                  fenced)
        results.append(action)
    return results, reason


def test_guard_keeps_a_primary_whose_standby_keeps_replying():
    actions, reason = beats([{"b": i} for i in range(20)])
    assert set(actions) == {"keep"} and "confirmed by b" in reason


def test_guard_fences_a_primary_not_confirmed_for_the_lease():
    actions, reason = beats([{"b": 1}] * 12)      # the reply time stops changing: a partition
    assert actions[:7] == ["keep"] * 7 and actions[7:] == ["fence"] * 5   # beats at 0 .. 3.0 s, then 3.5 s
    assert "not confirmed by a majority" in reason


def test_guard_dates_a_confirmation_no_later_than_a_beat_after_the_read_before_it():
    """A reply new since the last read arrived after that read began: a read that came late
    (a slow or frozen server) dates it at most one beat after the read before it."""
    beat = LEASE["guard_interval"]
    state = safety.guard_step({}, "primary", {"b": "t1"}, 10.0, 3, LEASE)[0]
    state = safety.guard_step(state, "primary", {"b": "t2"}, 14.0, 3, LEASE, observed_at=12.0)[0]
    assert state["confirmed"]["b"] == 10.0 + beat and state["majority_at"] == 10.0 + beat
    state = safety.guard_step(state, "primary", {"b": "t3"}, 14.2, 3, LEASE, observed_at=12.2)[0]
    assert state["confirmed"]["b"] == 12.2, "a read on time dates it from its start"
    action = safety.guard_step(state, "primary", {"b": "t3"}, 12.2 + LEASE["lease_seconds"] + 0.1, 3, LEASE)[1]
    assert action == "fence"


def test_guard_counts_only_a_majority():
    actions, unused = beats([{"b": i, "c": 1} for i in range(20)], total=5)   # 2 of 5
    assert actions[-1] == "fence"
    actions, unused = beats([{"b": i, "c": i} for i in range(20)], total=5)   # 3 of 5
    assert set(actions) == {"keep"}


@pytest.mark.parametrize("total, paused", [(2, False), (3, True)])
def test_guard_never_fences_without_lease_or_while_paused(total, paused):
    actions, unused = beats([{}] * 20, total=total, paused=paused)
    assert set(actions) == {"keep"}


@pytest.mark.parametrize("total, answering, holds", [
    (3, 2, True), (3, 1, True), (3, 0, False),        # cut off: the lease applies despite the marker
    (5, 2, True), (5, 1, False), (4, 1, False), (4, 2, True),
])
def test_a_marker_pauses_the_lease_only_while_a_majority_of_hosts_answer(total, answering, holds):
    assert safety.pause_holds(total, answering) is holds


@pytest.mark.parametrize("total, fenced, replies, fences", [
    (3, ["a"], {}, False),                  # its last standby gone too: itself + the fenced old primary
    (5, ["a"], {"b": 1}, True),             # 2 of 5 (b stopped replying): not a majority
    (5, ["a", "b"], {}, False),             # itself + 2 fenced of 5
    (3, ["a"], {"a": 1}, True),             # a rebuilt and streaming again counts as a standby, not fenced
])
def test_guard_counts_fenced_peers_towards_the_majority(total, fenced, replies, fences):
    actions, reason = beats([replies] * 12, total=total, fenced=fenced)
    assert (actions[-1] == "fence") == fences
    if not fences:
        assert "(fenced)" in reason


def test_lease_without_standbys():
    assert safety.lease_without_standbys(2, []) and safety.lease_without_standbys(3, ["a"])
    assert not safety.lease_without_standbys(3, []) and not safety.lease_without_standbys(5, ["a"])


@pytest.mark.parametrize("record, timeline, expected", [
    ("7\na\nb\n", 7, ["a", "b"]),
    ("7\na\nc\n", 7, ["a"]),          # its own name is never a confirmation
    ("6\na\n", 7, []),                 # an earlier primary's record (promoted again since)
    ("", 7, []), (None, 7, []), ("7\na\n", None, []),
])
def test_fenced_peers_read_only_the_record_of_this_timeline(record, timeline, expected):
    assert safety.fenced_peers(record, timeline, "c") == expected


@pytest.mark.parametrize("record, fenced, expected", [
    (None, ["a"], ["a"]),
    ("7\na\n", ["b"], ["a", "b"]),   # fenced later by the background retry: joins the failover's
    ("7\na\n", ["a"], ["a"]),
    ("6\na\n", ["b"], ["b"]),        # an earlier primary's record is replaced
])
def test_fenced_record_adds_to_this_timelines_record(record, fenced, expected):
    assert safety.fenced_record(record, 7, fenced) == expected


def test_guard_that_cannot_read_its_primary_lets_the_lease_run_out_and_fences():
    """A failed read (a stall, no connection slot) confirms nothing and resets nothing: a
    cut-off primary whose guard fails a read now and then still stops within its lease."""
    state, now = {}, 0.0
    for i in range(4):                                   # confirmed by b until 1.5 s
        state = safety.guard_step(state, "primary", {"b": i}, now, 3, LEASE)[0]
        now += 0.5
    actions = []
    for role in ["unknown", "primary", "unknown", "unknown", "primary", "unknown", "unknown", "unknown"]:
        state, action, reason = safety.guard_step(state, role, {"b": 3} if role == "primary" else {}, now, 3, LEASE)
        actions.append(action)
        now += 0.5
    assert actions[-1] == "fence" and "could not read this server" in reason, actions
    assert actions.index("fence") <= 6                   # 3 s after the last confirmation at 1.5 s


def test_guard_that_cannot_read_a_server_it_never_saw_as_primary_keeps():
    assert safety.guard_step({}, "unknown", {}, 10.0, 3, LEASE)[1] == "keep"


@pytest.mark.parametrize("rows, replies", [
    ([{"application_name": "b", "client_addr": "10.0.0.2", "reply": "t1"}], {"b": "t1"}),
    ([{"application_name": "b", "client_addr": "10.0.0.9", "reply": "t1"}], {}),       # not from b's address
    ([{"application_name": "pg_receivewal", "client_addr": "10.0.0.2", "reply": "t1"}], {}),   # not a peer
    ([{"application_name": "b", "client_addr": None, "reply": "t1"}], {}),             # a local client
    ([{"application_name": "a", "client_addr": "10.0.0.1", "reply": "t1"}], {}),       # itself
])
def test_only_the_clusters_own_standbys_confirm_a_primary(rows, replies):
    assert safety.peer_replies(rows, {"b": "10.0.0.2", "c": "10.0.0.3"}) == replies


SAVED = {"boot_id": "b1", "saved_at": 100.0, "majority_at": 98.0, "read_at": 99.5, "replies": {"s1": "t1"}}


@pytest.mark.parametrize("saved, boot, now, started, restored", [
    (SAVED, "b1", 101.0, 50.0, True),            # back within the lease
    (SAVED, "b1", 101.0, None, True),            # within the lease even while PostgreSQL is down
    (SAVED, "b1", 110.0, 50.0, True),            # gone longer, postmaster ran all along: expired lease kept
    (SAVED, "b1", 110.0, 105.0, False),          # postmaster started since (the start guard confirmed it)
    (SAVED, "b1", 110.0, None, False),           # no postmaster: nothing to guard
    (SAVED, "b2", 101.0, 50.0, False),           # another boot: the clock counts from it
    (SAVED, "b1", 90.0, 50.0, False),            # saved "in the future": not this clock
    (dict(SAVED, majority_at="x"), "b1", 101.0, 50.0, False),
    ({"boot_id": "b1"}, "b1", 101.0, 50.0, False),
    ([], "b1", 101.0, 50.0, False),
])
def test_a_guard_that_comes_back_restores_its_lease_only_when_safe(saved, boot, now, started, restored):
    state = safety.restored_lease(saved, boot, now, 3.0, started)
    assert bool(state) is restored
    if restored:
        assert state == {"majority_at": 98.0, "read_at": 99.5, "replies": {"s1": "t1"}}
        action = safety.guard_step(state, "primary", {"s1": "t1"}, now, 3, dict(safety.DEFAULT_LEASE))[1]
        assert action == ("fence" if now - 98.0 > 3.0 else "keep"), "an old reply renewed the lease"


def test_guard_on_a_standby_resets():
    state, action, unused = safety.guard_step({"majority_at": 0.0}, "standby", {}, 100.0, 3, LEASE)
    assert action == "keep" and state["majority_at"] is None


LOCAL = {"name": "a", "standby_signal": False, "fence_lock": None, "timeline": 3}


@pytest.mark.parametrize("local, peers, total, start, lock, retry, words", [
    (dict(LOCAL, standby_signal=True), {}, 3, True, False, False, "standby"),
    (dict(LOCAL, fence_lock="fenced at x"), {}, 3, False, False, False, "fenced"),
    (LOCAL, {"b": {"reachable": True, "in_recovery": False, "timeline": 4}}, 3, False, True, False,
     "already runs as primary"),
    (LOCAL, {"b": {"reachable": True, "in_recovery": True, "timeline": 4}}, 3, False, True, False, "newer timeline"),
    (LOCAL, {"b": {"reachable": False}, "c": {"reachable": False}}, 3, False, False, True, "a majority is needed"),
    (LOCAL, {"b": {"reachable": True, "in_recovery": True, "timeline": 3, "follows": "c"}}, 3, False, False, True,
     "a majority is needed"),
    (LOCAL, {"b": {"reachable": True, "in_recovery": True, "timeline": 3, "follows": "a"}}, 3, True, False, False,
     "confirmed by b"),
    # two nodes: the peer may have been promoted while this node was powered off (no lock) and be cut away
    (LOCAL, {"b": {"reachable": False}}, 2, False, False, True, "with two nodes the peer must answer as a standby"),
    (LOCAL, {"b": {"reachable": True, "in_recovery": True, "timeline": 3, "follows": None}}, 2, False, False, True,
     "following it or fenced: none"),
    (LOCAL, {"b": {"reachable": True, "in_recovery": True, "timeline": 3, "follows": "a"}}, 2, True, False, False,
     "confirmed by b"),
    (dict(LOCAL, bootstrap=True), {"b": {"reachable": False}}, 2, True, False, False, "bootstrap"),
    (LOCAL, {}, 1, True, False, False, "confirmed by itself"),
    # a peer the failover that promoted this node proved fenced (its record) confirms it
    (dict(LOCAL, fenced_peers=["b"]), {"b": {"reachable": False}}, 2, True, False, False, "confirmed by b"),
    (dict(LOCAL, fenced_peers=["b"]), {"b": {"reachable": False}, "c": {"reachable": False}}, 3, True, False, False,
     "confirmed by b"),
    # the operator's force=true starts without the confirmation, never against a proof
    (dict(LOCAL, forced=True), {"b": {"reachable": False}}, 2, True, False, False, "operator's force"),
    # three nodes or more: a primary without a majority would lose its lease: no force
    (dict(LOCAL, forced=True), {"b": {"reachable": False}, "c": {"reachable": False}}, 3, False, False, True,
     "nodes lost for good must leave the inventory"),
    (dict(LOCAL, forced=True, fence_lock="fenced"), {}, 2, False, False, False, "fenced"),
    (dict(LOCAL, forced=True), {"b": {"reachable": True, "in_recovery": False, "timeline": 4}}, 2, False, True, False,
     "already runs as primary"),
    (dict(LOCAL, forced=True), {"b": {"reachable": True, "in_recovery": True, "timeline": 4}}, 2, False, True, False,
     "newer timeline"),
    (dict(LOCAL, bootstrap=True), {"b": {"reachable": False}, "c": {"reachable": False}}, 3, True, False, False,
     "bootstrap"),
    (dict(LOCAL, bootstrap=True, fence_lock="fenced"), {}, 3, False, False, False, "fenced"),
])
def test_start_decision(local, peers, total, start, lock, retry, words):
    decision = safety.start_decision(local, peers, total)
    assert (decision["start"], decision["write_lock"], decision["retry"]) == (start, lock, retry)
    assert words in decision["reason"]


ROW = {"holder": "a", "term": 4, "timeline": 3, "version": 1000}
TAKEN_OVER = {"holder": "b", "term": 5, "timeline": 4, "version": 1010}
EARLIER = {"holder": "b", "term": 3, "timeline": 2, "version": 990}   # b held it before a took over


@pytest.mark.parametrize("arbiter, peers, start, lock, retry, words", [
    ({"lease": None}, {}, False, False, True, "arbiter does not answer"),
    ({"lease": ROW}, {}, True, False, False, "lease allows it (holder a"),
    ({"lease": TAKEN_OVER}, {}, False, True, False, "belongs to b"),
    ({"lease": ROW, "seen": ROW}, {}, True, False, False, "lease allows it (holder a"),
    # an arbiter restored from a backup: its row names this node, the row this node read last its peer
    ({"lease": ROW, "seen": TAKEN_OVER}, {}, False, True, False, "restored from a backup"),
    # ... or the holder before this node: both rows allow the start
    ({"lease": EARLIER, "seen": ROW}, {}, True, False, False, "lease allows it (holder b"),
    # the row this node read last allows it, the arbiter's (current) row does not
    ({"lease": TAKEN_OVER, "seen": dict(ROW, version=1020)}, {}, False, True, False, "belongs to b"),
    ({"lease": {"holder": None}}, {"b": {"reachable": False}}, False, False, True, "peer must answer"),
    ({"lease": ROW}, {"b": {"reachable": True, "in_recovery": True, "timeline": 4}}, False, True, False,
     "newer timeline"),
])
def test_start_decision_in_keeper_mode(arbiter, peers, start, lock, retry, words):
    decision = safety.start_decision(LOCAL, peers, 2, arbiter=arbiter)
    assert (decision["start"], decision["write_lock"], decision["retry"]) == (start, lock, retry), decision
    assert words in decision["reason"]


def standby(upstream=None, age=None, reachable=True):
    return {"reachable": reachable, "in_recovery": True, "upstream": upstream, "upstream_age": age}


DOWN = {"reachable": False, "in_recovery": None}
PLAN = {"action": "promote", "candidate": "b", "fence": ["a"], "follow": ["c"]}


def gate(nodes, fenced=(), revoked=None, now=100.0, total=3, lease=None, plan=None):
    return safety.promotion_gate(nodes, plan or PLAN, set(fenced), revoked or {}, now, total, lease or LEASE)


def test_gate_promotes_at_once_when_every_possible_primary_is_fenced():
    assert gate({"a": DOWN, "b": standby(), "c": standby()}, fenced=["a"])["action"] == "promote"


def test_gate_revokes_the_standbys_of_a_powered_off_primary_then_promotes_without_a_wait():
    """The fence command left no lock: powered on, the old primary would start if a standby
    still followed it (before the repoint, or if the failover side dies first)."""
    nodes = {"a": DOWN, "b": standby(), "c": standby()}
    first = safety.promotion_gate(nodes, PLAN, {"a"}, {}, 100.0, 3, LEASE, unlocked=["a"])
    assert first["action"] == "revoke" and first["nodes"] == ["b", "c"] and "no lock" in first["reason"]
    then = safety.promotion_gate(nodes, PLAN, {"a"}, {"b": 100.0, "c": 100.0}, 100.0, 3, LEASE, unlocked=["a"])
    assert then["action"] == "promote"
    assert safety.promotion_gate(nodes, PLAN, {"a"}, {}, 100.0, 3, LEASE)["action"] == "promote"   # locked


def test_gate_refuses_a_promotion_no_majority_could_confirm():
    result = gate({"a": DOWN, "b": standby(), "c": DOWN}, fenced=["a"])
    assert result["action"] == "refuse" and "needs a majority" in result["reason"]


def test_gate_refuses_without_lease_in_a_two_node_cluster():
    result = gate({"a": DOWN, "b": standby()}, total=2)
    assert result["action"] == "refuse" and "cannot rely on the lease" in result["reason"]


@pytest.mark.parametrize("age, action", [(0.5, "wait"), (None, "wait"), (2.4, "wait"), (2.6, "revoke"), (3.9, "revoke")])
def test_gate_waits_while_a_standby_still_hears_the_old_primary(age, action):
    # Its WAL receiver asked for a reply after 2 s of silence (half of wal_receiver_timeout): a
    # live primary answers at once, so 2.5 s without a message means it is lost for that standby
    # although the receiver only gives up at 4 s.
    result = gate({"a": DOWN, "b": standby("a", age), "c": standby()})
    assert result["action"] == action and result["veto"] == (action == "wait"), result
    assert safety.hear_seconds(LEASE) == 2.5


@pytest.mark.parametrize("ages, surveyed_at, seconds", [
    ((0.5,), None, 2.05),           # read again once the last one to hear it was silent for 2.5 s
    ((0.5, 1.5), None, 2.05),       # the one that heard it last decides
    ((2.4,), 99.5, 0.05),           # the survey began 0.5 s before the gate: its ages are older by now
    ((0.5, None), 99.5, 0.5),       # an unknown age: a beat
])
def test_gate_reads_a_hearing_standby_again_once_it_would_have_lost_the_primary(ages, surveyed_at, seconds):
    nodes = dict([("a", DOWN)] + [("s%d" % i, standby("a", age)) for i, age in enumerate(ages)])
    plan = dict(PLAN, follow=sorted(n for n in nodes if n not in ("a", "b")))
    result = safety.promotion_gate(dict(nodes, b=standby()), plan, set(), {}, 100.0, 3, LEASE, surveyed_at)
    assert result["action"] == "wait" and result["veto"] and result["seconds"] == pytest.approx(seconds), result


def test_gate_in_five_nodes_proceeds_with_two_unreachable_and_refuses_with_three():
    two = gate({"a": DOWN, "b": standby(), "c": DOWN, "d": standby(), "e": standby()}, total=5,
               plan=dict(PLAN, fence=["a", "c"]))
    assert two["action"] == "revoke" and two["nodes"] == ["b", "d", "e"]
    three = gate({"a": DOWN, "b": standby(), "c": DOWN, "d": DOWN, "e": standby()}, total=5,
                 plan=dict(PLAN, fence=["a", "c", "d"]))
    assert three["action"] == "refuse" and "needs a majority" in three["reason"]


def test_gate_revokes_then_waits_out_the_lease_then_promotes():
    nodes = {"a": DOWN, "b": standby(), "c": standby()}
    assert gate(nodes) == {"action": "revoke", "nodes": ["b", "c"], "seconds": 0.0,
                           "reason": "stop b, c from following a", "veto": False}
    waiting = gate(nodes, revoked={"b": 100.0, "c": 100.2}, now=101.0)
    assert waiting["action"] == "wait" and waiting["seconds"] == pytest.approx(safety.revocation_wait(LEASE) - 0.8)
    done = gate(nodes, revoked={"b": 100.0, "c": 100.2}, now=100.2 + safety.revocation_wait(LEASE))
    assert done["action"] == "promote" and "stopped itself" in done["reason"]


SYNC_PLAN = {"action": "promote", "candidate": "b", "fence": ["a"], "follow": []}


@pytest.mark.parametrize("nodes, required, names, failed_timeline, refused", [
    ({"b": dict(standby(), timeline=2), "c": dict(standby(), timeline=2)}, 1, ["b", "c"], 2, False),
    ({"b": dict(standby(), timeline=2), "c": DOWN}, 1, ["b", "c"], 2, True),
    ({"b": dict(standby(), timeline=2), "c": DOWN}, 0, ["b", "c"], 2, False),
    ({"b": dict(standby(), timeline=2), "c": DOWN, "d": dict(standby(), timeline=2)}, 2, ["b", "c", "d"], 2, False),
    ({"b": dict(standby(), timeline=1), "c": dict(standby(), timeline=1)}, 1, ["b", "c"], 2, True),
])
def test_sync_quorum_refusal(nodes, required, names, failed_timeline, refused):
    reason = safety.sync_quorum_refusal(nodes, SYNC_PLAN, required, names, failed_timeline)
    assert bool(reason) == refused
    if refused:
        assert "force=true" in reason


@pytest.mark.parametrize("strict, streaming, lease_held, expected", [
    (True, [], True, "ANY 1 (b, c)"), (False, [], True, ""), (False, ["b"], True, "ANY 1 (b, c)"),
    (False, [], False, "ANY 1 (b, c)")])   # a primary about to stop itself acknowledges nothing alone
def test_sync_policy(strict, streaming, lease_held, expected):
    assert safety.sync_policy(strict, streaming, "ANY 1 (b, c)", lease_held) == expected


@pytest.mark.parametrize("quiet_for, expected", [
    (0.5, "ANY 1 (b, c)"),     # a standby streamed half a second ago (or the node was just promoted)
    (3.0, "ANY 1 (b, c)"),     # up to the hold
    (3.1, ""),                 # nobody streamed for longer: asynchronous
])
def test_sync_policy_holds_synchronous_after_the_last_stream(quiet_for, expected):
    assert safety.sync_policy(False, [], "ANY 1 (b, c)", True, quiet_for, 3.0) == expected


def test_standing_fenced_drops_a_peer_that_streams_again():
    assert safety.standing_fenced(["a", "b"], {"b": "t"}) == ["a"]


def test_fence_counts_only_a_verified_result():
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    assert fencing.parse_fence_output(0, "PGHA-FENCED primary 7\n") == {"kind": "primary", "timeline": 7}
    assert fencing.parse_fence_output(0, "PGHA-FENCED standby unknown") == {"kind": "standby", "timeline": None}
    assert fencing.parse_fence_output(1, "PGHA-FENCED primary 7") is None
    assert fencing.parse_fence_output(0, "postmaster still running after the stop") is None
    assert fencing.parse_fence_output(0, "") is None


@pytest.mark.parametrize("facts, streams", [
    ({"reachable": True, "in_recovery": True, "wal_receiver": {"status": "streaming"}}, True),
    # a diverged old primary given a standby.signal by hand: in recovery, but it cannot stream
    ({"reachable": True, "in_recovery": True, "wal_receiver": None}, False),
    ({"reachable": True, "in_recovery": True, "wal_receiver": {"status": "stopping"}}, False),
    ({"reachable": True, "in_recovery": False, "wal_receiver": None}, False),
    ({"reachable": False, "in_recovery": None}, False),
])
def test_a_fence_retry_leaves_alone_only_a_node_that_streams_as_a_standby(facts, streams):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    assert fencing.streams_as_standby(facts) is streams


def test_annotate_names_the_upstream_and_the_followed_node():
    facts = {"b": {"reachable": True, "in_recovery": True, "primary_conninfo_host": "10.0.0.1",
                   "wal_receiver": {"status": "streaming", "sender_host": "10.0.0.1", "last_msg_age": 0.4}},
             "c": {"reachable": True, "in_recovery": True, "primary_conninfo_host": "",
                   "wal_receiver": None}}
    out = safety.annotate(facts, {"10.0.0.1": "a"})
    assert (out["b"]["upstream"], out["b"]["upstream_age"], out["b"]["follows"]) == ("a", 0.4, "a")
    assert (out["c"]["upstream"], out["c"]["follows"]) == (None, None)


def fake_cluster(tmp_path, status_after_stop=3, status_before=0):
    """A layout whose tools are small scripts: pg_controldata names timeline 3, pg_ctl status
    exits with the given codes before and after a stop (0 running, 3 not running, 4 no
    accessible data directory), pg_ctlcluster (on PATH) records how it was called."""
    bindir, datadir, path = tmp_path / "bin dir", tmp_path / "data dir", tmp_path / "path"
    for directory in (bindir, datadir, path):
        directory.mkdir()
    scripts = {bindir / "pg_controldata": "echo \"Latest checkpoint's TimeLineID:       3\"",
               bindir / "pg_ctl": "[ -e %s ] && exit %d; exit %d" % (
                   tmp_path / "stopped", status_after_stop, status_before),
               path / "pg_ctlcluster": "echo \"$@\" > %s" % (tmp_path / "stopped")}
    for script, body in scripts.items():
        script.write_text("#!/bin/sh\n%s\n" % body)
        script.chmod(0o755)
    layout = {"version": "15", "cluster": "main", "bindir": str(bindir), "datadir": str(datadir)}
    return layout, str(path)


@pytest.mark.parametrize("status_after_stop, verified", [(3, True), (0, False), (4, False)])
def test_the_fence_script_stops_the_layouts_cluster_and_verifies_it(tmp_path, monkeypatch, status_after_stop,
                                                                    verified):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    layout, path = fake_cluster(tmp_path, status_after_stop)
    monkeypatch.setenv("PATH", path + os.pathsep + os.environ["PATH"])
    result, out = fencing.fence_locally(layout, str(tmp_path / "fenced"), "test", 5432)
    assert (tmp_path / "stopped").read_text().split() == ["15", "main", "stop", "-m", "immediate"]
    assert (tmp_path / "fenced").exists(), "the lock file is written before the stop"
    assert result == ({"kind": "primary", "timeline": 3} if verified else None), out


def test_a_lock_that_cannot_be_written_still_stops_the_primary_but_verifies_nothing(tmp_path, monkeypatch):
    """A full or read-only /var/lib/pgha: the guard's self-fence must still stop its primary."""
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    layout, path = fake_cluster(tmp_path)
    monkeypatch.setenv("PATH", path + os.pathsep + os.environ["PATH"])
    result, out = fencing.fence_locally(layout, str(tmp_path / "no such directory" / "fenced"), "test", 5432)
    assert (tmp_path / "stopped").read_text().split() == ["15", "main", "stop", "-m", "immediate"], out
    assert result is None and "fence lock could not be written" in out, out


def test_the_fence_script_verifies_a_postmaster_already_gone_without_a_stop(tmp_path, monkeypatch):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    layout, path = fake_cluster(tmp_path, status_before=3)
    monkeypatch.setenv("PATH", path + os.pathsep + os.environ["PATH"])
    result, out = fencing.fence_locally(layout, str(tmp_path / "fenced"), "test", 5432)
    assert not (tmp_path / "stopped").exists(), "no stop for a postmaster that is gone (kill -9)"
    assert (tmp_path / "fenced").exists()
    assert result == {"kind": "primary", "timeline": 3}, out


@pytest.mark.parametrize("history, timeline", [([], 3), (["00000002.history"], 3), (["00000004.history"], 4),
                                               (["0000000A.history", "00000004.history", "x.history"], 10),
                                               (["abc.history", "0000000b.history", "0000000C.history.partial"], 3)])
def test_the_fence_reports_the_newest_timeline_of_a_promotion_not_yet_checkpointed(
        tmp_path, monkeypatch, history, timeline):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing, promotion
    layout, path = fake_cluster(tmp_path, status_before=3)
    (tmp_path / "data dir" / "pg_wal").mkdir()
    for name in history:
        (tmp_path / "data dir" / "pg_wal" / name).write_text("")
    monkeypatch.setenv("PATH", path + os.pathsep + os.environ["PATH"])
    result, out = fencing.fence_locally(layout, str(tmp_path / "fenced"), "test", 5432)
    assert result == {"kind": "primary", "timeline": timeline}, out
    controldata = "Latest checkpoint's TimeLineID:       3\nMin recovery ending loc's timeline:   0\n"
    assert promotion.stopped_timeline(controldata, history) == timeline, "the guard and pg_node_info read the same"


def test_a_stopped_timeline_needs_something_to_read():
    from ansible_collections.pgha.cluster.plugins.module_utils import promotion
    assert promotion.stopped_timeline("", []) is None
    assert promotion.stopped_timeline("Min recovery ending loc's timeline:   5\n", ["README"]) == 5


def start_in_progress(tmp_path, postmaster_after, marked_ago=0):
    """A start guard marked its start `marked_ago` seconds ago; the postmaster of that start
    runs (pg_ctl status 0) from the `postmaster_after`-th status call on (None: never) until
    the fence stops it."""
    calls, running = tmp_path / "calls", tmp_path / "running"
    (tmp_path / "bin dir" / "pg_ctl").write_text(
        "#!/bin/sh\necho x >> {calls}\n[ -e {stopped} ] && exit 3\n"
        "[ {after} -gt 0 ] && [ $(wc -l < {calls}) -ge {after} ] && exit 0\nexit 3\n".format(
            calls=calls, stopped=tmp_path / "stopped", after=postmaster_after or 0))
    marker = tmp_path / "starting"
    marker.write_text("1\n")
    os.utime(marker, (time.time() - marked_ago, time.time() - marked_ago))
    return calls


@pytest.mark.parametrize("postmaster_after, marked_ago, verified, stops", [
    (4, 0, True, True),            # the start's postmaster comes: stopped, not taken for gone
    (None, 0, False, False),       # still in flight after the wait: fails closed
    (None, 3600, True, False),     # a mark a crash left an hour ago holds nothing up
    (None, -3600, False, False),   # the clock stepped back: the wait stays bounded
])
def test_the_fence_script_waits_for_the_postmaster_of_a_start_in_flight(tmp_path, monkeypatch, postmaster_after,
                                                                        marked_ago, verified, stops):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    layout, path = fake_cluster(tmp_path, status_before=3)
    calls = start_in_progress(tmp_path, postmaster_after, marked_ago)
    monkeypatch.setenv("PATH", path + os.pathsep + os.environ["PATH"])
    monkeypatch.setattr(fencing, "START_WAIT_SECONDS", 0.3)
    started = time.time()
    result, out = fencing.fence_locally(layout, str(tmp_path / "fenced"), "test", 5432)
    assert time.time() - started < 5
    assert (tmp_path / "fenced").exists(), "the lock is written before the wait"
    assert result == ({"kind": "primary", "timeline": 3} if verified else None), out
    assert (tmp_path / "stopped").exists() is stops, out
    if not verified:
        assert "PostgreSQL is starting here" in out
    if marked_ago > 0:
        assert len(calls.read_text().split()) <= 3, "an old mark holds no fence up"


def test_the_fence_script_kills_what_a_killed_postmaster_left_running(tmp_path, monkeypatch):
    """After a kill -9 of the postmaster its backends and WAL senders run on until they notice
    (they could still commit and stream): the processes working in the data directory."""
    import subprocess
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    layout, path = fake_cluster(tmp_path, status_before=3)
    monkeypatch.setenv("PATH", path + os.pathsep + os.environ["PATH"])
    orphan = subprocess.Popen(["sleep", "30"], cwd=layout["datadir"])
    try:
        result, out = fencing.fence_locally(layout, str(tmp_path / "fenced"), "test", 5432)
        assert orphan.wait(5) == -9, "the orphan still runs"
        assert result == {"kind": "primary", "timeline": 3}, out
    finally:
        orphan.kill()


def test_the_fence_script_ends_a_frozen_postmaster_whose_stop_never_returns(tmp_path, monkeypatch):
    """A frozen postmaster (SIGSTOP, a hung disk) never answers the immediate stop while its
    backends could still commit: the stop is bounded and the kill -9 sweep ends it."""
    import subprocess
    import time
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    layout, path = fake_cluster(tmp_path)
    postmaster = subprocess.Popen(["sleep", "300"], cwd=layout["datadir"])
    bindir = tmp_path / "bin dir"
    # running unless gone or a zombie (this test, its parent, reaps it only at the end)
    (bindir / "pg_ctl").write_text("#!/bin/sh\ns=$(cut -d' ' -f3 /proc/%d/stat 2>/dev/null)\n"
                                   "[ -n \"$s\" ] && [ \"$s\" != Z ] && exit 0; exit 3\n" % postmaster.pid)
    (tmp_path / "path" / "pg_ctlcluster").write_text("#!/bin/sh\nsleep 60\n")
    monkeypatch.setenv("PATH", path + os.pathsep + os.environ["PATH"])
    try:
        started = time.monotonic()
        result, out = fencing.fence_locally(layout, str(tmp_path / "fenced"), "test", 5432)
        assert result == {"kind": "primary", "timeline": 3}, out
        assert time.monotonic() - started < fencing.STOP_SECONDS + 3
        assert postmaster.wait(5) == -9
    finally:
        postmaster.kill()


def test_the_fence_script_stops_and_does_not_verify_when_pg_ctl_cannot_read_the_data_directory(tmp_path, monkeypatch):
    """pg_ctl status exits 4 for a data directory it cannot read (a wrong layout): that
    proves nothing about the postmaster, so pg_ctlcluster (which finds the cluster by version
    and name) still stops it, and the fence is not reported verified."""
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    layout, path = fake_cluster(tmp_path, status_after_stop=4, status_before=4)
    monkeypatch.setenv("PATH", path + os.pathsep + os.environ["PATH"])
    result, out = fencing.fence_locally(layout, str(tmp_path / "fenced"), "test", 5432)
    assert (tmp_path / "stopped").exists(), "the stop is skipped only for pg_ctl's 'no server running'"
    assert result is None, out


@pytest.mark.parametrize("facts, has_command, plan", [
    ({"reachable": True}, True, {"link": True, "power_at_once": False}),                 # answers (a live primary)
    ({"reachable": False, "host_answers": True}, True, {"link": True, "power_at_once": False}),   # kill -9
    ({"reachable": False, "host_answers": False}, True, {"link": False, "power_at_once": True}),  # power-off, cut
    ({"reachable": False, "host_answers": None}, True, {"link": False, "power_at_once": True}),   # not known
    ({"reachable": False, "host_answers": False}, False, {"link": False, "power_at_once": False}),
    ({}, False, {"link": False, "power_at_once": False}),                                  # not surveyed
])
def test_fence_plan_uses_the_link_only_for_a_host_that_answers_and_powers_off_a_silent_one_at_once(
        facts, has_command, plan):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    assert fencing.fence_plan(facts, has_command) == plan


@pytest.mark.parametrize("facts, silent", [
    ({"reachable": False, "host_answers": False}, True),     # powered off, cut away: the probe timed out
    ({"reachable": False, "host_answers": True}, False),     # refused: the host runs (kill -9, a stop)
    ({"reachable": False, "host_answers": None}, False),     # not known: fenced first, as before
    ({"reachable": True, "host_answers": False}, False),
])
def test_a_host_is_silent_only_when_its_probe_timed_out(facts, silent):
    from ansible_collections.pgha.cluster.plugins.module_utils import fencing
    assert fencing.silent(facts) is silent
