"""Table tests of the keeper's decision (module_utils/keeper.py): every branch, each refusal."""
import pytest

from ansible_collections.pgha.cluster.plugins.module_utils import arbiter, keeper

HELD = {"holder": "node1", "term": 4, "timeline": 2, "expired": False, "synchronous": True, "age": 0.5}
PEER_STREAMS = {"name": "node2", "reachable": True, "role": "standby", "timeline": 2, "streaming": True,
                "sync": True, "flush_lsn": 1000}
PEER_GONE = {"name": "node2", "reachable": False}
PEER_PRIMARY = {"name": "node2", "reachable": True, "role": "primary", "timeline": 3}
SYNCED = {"failures": 0, "synced": True, "unsynced_lsn": 10, "was_async": False}


def primary(**changes):
    facts = {"name": "node1", "role": "primary", "timeline": 2, "lsn": 1000, "async": False, "paused": False,
             "lease": HELD, "peer": PEER_STREAMS}
    facts.update(changes)
    return facts


def standby(**changes):
    facts = {"name": "node2", "role": "standby", "timeline": 2, "receiving": True, "paused": False,
             "lease": dict(HELD, expired=True), "peer": dict(PEER_GONE, name="node1")}
    facts.update(changes)
    return facts


def steps(decision):
    return [s[0] for s in decision["steps"]]


@pytest.mark.parametrize("facts, state, expected, words", [
    # the primary
    (primary(), SYNCED, ["renew"], "standby streams"),
    (primary(paused=True), SYNCED, [], "paused"),
    (primary(lease={"holder": None}), SYNCED, ["create"], "new cluster"),
    (primary(peer=PEER_GONE), SYNCED, ["renew"], "failed beat 1 of 3"),
    (primary(peer=PEER_GONE), dict(SYNCED, failures=2), ["renew", "async"], "asynchronous replication"),
    (primary(peer=PEER_GONE, **{"async": True}), SYNCED, ["renew"], "asynchronous while"),
    (primary(**{"async": True}), SYNCED, ["renew", "sync"], "back to synchronous"),
    (primary(peer=dict(PEER_PRIMARY, timeline=2)), SYNCED, ["renew", "fence_peer"], "without the lease: fencing it"),
    # a peer promoted after this node: the row naming this node is an old one
    (primary(peer=PEER_PRIMARY), SYNCED, ["fence_self"], "this is the old primary"),
    (primary(lease=dict(HELD, holder="node2", timeline=3)), SYNCED, ["fence_self"], "a failover happened"),
    (primary(lease=dict(HELD, holder="node2", timeline=2)), SYNCED, ["fence_self"], "a failover happened"),
    (primary(timeline=3, lease=dict(HELD, holder="node2", timeline=2)), SYNCED, ["claim"], "switchover"),
    (primary(lease=None), SYNCED, [], "arbiter does not answer: no switch"),
    (primary(lease=None, peer=PEER_GONE), dict(SYNCED, failures=5), [], "no switch to asynchronous"),
    (primary(lease=None, **{"async": True}), SYNCED, ["sync"], "back to synchronous"),
    (primary(lease=None, peer=PEER_PRIMARY), SYNCED, ["fence_self"], "fencing this node"),
    (primary(lease=None, peer=dict(PEER_PRIMARY, timeline=1)), SYNCED, [], "it fences itself"),
    # the standby
    (standby(peer=dict(PEER_PRIMARY, name="node1")), {}, [], "the primary answers"),
    (standby(peer=dict(PEER_PRIMARY, name="node1"), receiving=False), {}, [], "does not stream from it"),
    (standby(), {}, [], "failed beat 1 of 3"),
    (standby(), {"failures": 2}, ["claim", "promote", "fence_peer", "renew", "async", "after_command"],
     "taking the lease and promoting"),
    (standby(lease=None), {"failures": 2}, [], "neither does the arbiter"),
    (standby(lease=HELD), {"failures": 2}, [], "the link between the nodes is down"),
    (standby(lease=dict(HELD, expired=True, synchronous=False)), {"failures": 2}, [], "could lose acknowledged"),
    (standby(lease={"holder": None}), {"failures": 2}, [], "never held"),
    (standby(lease=dict(HELD, holder="node2")), {"claimed_term": 4}, ["promote", "renew", "async", "after_command"],
     "holds the lease"),
    (standby(lease=dict(HELD, holder="node2"), peer=dict(PEER_PRIMARY, name="node1", timeline=2), receiving=False),
     {"claimed_term": 4}, ["fence_peer", "promote", "renew", "async", "after_command"], "holds the lease"),
    # a row naming this standby from when it was primary (before a switchover) promotes nothing by itself
    (standby(lease=dict(HELD, holder="node2")), {}, [], "failed beat 1 of 3"),
    (standby(lease=dict(HELD, holder="node2")), {"claimed_term": 3}, [], "failed beat 1 of 3"),
    (standby(lease=dict(HELD, holder="node2")), {"failures": 2}, [], "the link between the nodes is down"),
    (standby(lease=dict(HELD, holder="node2"), peer=dict(PEER_PRIMARY, name="node1", timeline=2), receiving=True),
     {}, [], "takes the lease over"),
    # after a switchover: the old primary, now a standby, still holds the lease; the new primary takes it over
    (standby(lease=dict(HELD, holder="node2"), peer=dict(PEER_PRIMARY, name="node1", timeline=3)), {}, [],
     "takes the lease over"),
    (standby(paused=True), {"failures": 2}, [], "paused"),
    # the local server is down
    ({"name": "node1", "role": None}, {"failures": 2}, [], "does not answer"),
])
def test_keeper_step(facts, state, expected, words):
    new_state, decision = keeper.keeper_step(facts, state, 3)
    assert steps(decision) == expected and words in decision["reason"], decision


def test_standby_claims_the_term_it_read_and_only_as_a_takeover():
    unused, decision = keeper.keeper_step(standby(), {"failures": 2}, 3)
    assert decision["steps"][0] == ("claim", 4, True)


def test_a_claim_is_remembered_until_the_node_runs_as_primary():
    state, unused = keeper.keeper_step(standby(), {"failures": 2}, 3)
    assert state["claimed_term"] == 5
    state, decision = keeper.keeper_step(standby(lease=dict(HELD, holder="node2", term=5)), state, 3)
    assert steps(decision)[0] == "promote"          # the promotion a crash cut short is finished
    state, unused = keeper.keeper_step(primary(name="node2", lease=dict(HELD, holder="node2", term=5)), state, 3)
    assert "claimed_term" not in state


@pytest.mark.parametrize("content, expected", [
    ('{"claimed_term": 5}', 5), ('{"claimed_term": null}', None), ('{"claimed_term": true}', None),
    ('{"claimed_term": "5"}', None), ("not json", None), ("[]", None),
])
def test_claimed_term_from_the_state_file(tmp_path, content, expected):
    path = tmp_path / "keeper.json"
    path.write_text(content)
    assert arbiter.kept_state(str(path)).get("claimed_term") == expected


def test_async_is_recorded_at_the_arbiter_before_the_switch():
    unused, decision = keeper.keeper_step(primary(peer=PEER_GONE), dict(SYNCED, failures=2), 3)
    assert decision["steps"] == [("renew", False), ("async",)]


def test_synced_only_after_the_standby_caught_up_past_the_asynchronous_commits():
    state = {}
    state, decision = keeper.keeper_step(primary(**{"async": True}, lsn=5000), state, 3)
    assert decision["steps"][0] == ("renew", False)
    state, decision = keeper.keeper_step(primary(lsn=6000, peer=dict(PEER_STREAMS, flush_lsn=5500)), state, 3)
    assert decision["steps"] == [("renew", False)]        # first beat after the switch: commits up to 6000 async
    state, decision = keeper.keeper_step(primary(lsn=7000, peer=dict(PEER_STREAMS, flush_lsn=5900)), state, 3)
    assert decision["steps"] == [("renew", False)]        # not yet past 6000
    state, decision = keeper.keeper_step(primary(lsn=7000, peer=dict(PEER_STREAMS, flush_lsn=6000)), state, 3)
    assert decision["steps"] == [("renew", True)]
    state, decision = keeper.keeper_step(primary(peer=PEER_GONE), state, 3)
    assert decision["steps"] == [("renew", True)]         # synchronous mode: commits still wait for it


def test_a_fresh_keeper_does_not_vouch_for_the_standby_on_its_first_beat():
    unused, decision = keeper.keeper_step(primary(), {}, 3)
    assert decision["steps"] == [("renew", False)]


@pytest.mark.parametrize("lease, timeline, refused", [
    (None, 2, "does not answer"),
    ({"holder": None}, 2, None),
    (dict(HELD, holder="node1"), 2, None),
    (dict(HELD, holder="node2", timeline=2), 2, "a failover happened"),
    (dict(HELD, holder="node2", timeline=3), 2, "a failover happened"),
    (dict(HELD, holder="node2", timeline=1), 2, None),
])
def test_start_refusal(lease, timeline, refused):
    reason = keeper.start_refusal(lease, "node1", timeline)
    assert (reason is None) if refused is None else (refused in reason)


SEEN = keeper.remembered(dict(HELD, version=1000))


@pytest.mark.parametrize("facts, expected, words", [
    # a standby never acts on a row older than the one it read (an arbiter restored from a backup)
    (standby(lease=dict(HELD, expired=True, version=990)), [], "restored from a backup"),
    (standby(lease=dict(HELD, holder="node2", version=990)), [], "restored from a backup"),
    (standby(lease=dict(HELD, expired=True, version=1000)),
     ["claim", "promote", "fence_peer", "renew", "async", "after_command"], "taking the lease"),
    # a primary renews it: the row is current again
    (primary(lease=dict(HELD, version=990)), ["renew"], "standby streams"),
])
def test_a_lease_row_older_than_the_one_read(facts, expected, words):
    unused, decision = keeper.keeper_step(facts, dict(SYNCED, failures=2, lease_seen=SEEN), 3)
    assert steps(decision) == expected and words in decision["reason"], decision


@pytest.mark.parametrize("version, seen, previous, behind", [
    (1000, None, None, False),      # nothing remembered yet
    (1001, 1000, 1000, False),      # newer
    (1000, 1000, 1000, False),      # the same row
    (990, 1000, 1000, True),        # restored: older than the row read last
    (990, 1000, 990, True),         # and still unchanged
    (991, 1000, 990, False),        # changed since the last read: a live writer renews it
    (1, 1000, 1000, True),          # the row deleted and created again ...
    (2, 1000, 1, False),            # ... and renewed since
    (990, 1000, None, True),        # a keeper that just started
])
def test_lease_behind(version, seen, previous, behind):
    assert keeper.lease_behind({"version": version}, seen and {"version": seen}, previous) is behind


def test_the_row_read_last_is_remembered():
    state, unused = keeper.keeper_step(primary(lease=dict(HELD, version=1001)), dict(SYNCED, lease_seen=SEEN), 3)
    assert state["lease_seen"] == {"holder": "node1", "term": 4, "timeline": 2, "version": 1001}
    assert state["lease_read"] == 1001
    state, unused = keeper.keeper_step(standby(lease=dict(HELD, version=990)), dict(SYNCED, lease_seen=SEEN), 3)
    assert state["lease_seen"] == SEEN
    state, unused = keeper.keeper_step(standby(lease=None), dict(SYNCED, lease_seen=SEEN), 3)
    assert state["lease_seen"] == SEEN


def test_beat_facts_from_surveys():
    local = {"role": "primary", "timeline": 2, "current_lsn_bytes": 99, "wal_receiver": None,
             "replication": [{"application_name": "node2", "state": "streaming", "sync_state": "quorum",
                              "flush_lsn": "0/63"}]}
    peer = {"reachable": True, "role": "standby", "timeline": 2, "wal_receiver": {"status": "streaming"}}
    facts = keeper.beat_facts("node1", local, peer, "node2", True, HELD, False)
    assert facts["peer"] == {"name": "node2", "reachable": True, "role": "standby", "timeline": 2,
                             "streaming": True, "sync": True, "flush_lsn": 99}
    assert facts["async"] and facts["lsn"] == 99 and facts["role"] == "primary"
    assert keeper.beat_facts("node1", None, None, "node2", False, None, False)["role"] is None
    assert keeper.lease_seconds(1, 3) == 3.0


def test_strict_mode_never_goes_asynchronous_and_keeps_vouching_for_the_standby():
    unused, decision = keeper.keeper_step(primary(peer=PEER_GONE), dict(SYNCED, failures=2), 3, strict=True)
    assert decision["steps"] == [("renew", True)] and "writes wait" in decision["reason"], decision


def test_strict_mode_turns_an_asynchronous_primary_synchronous_again():
    unused, decision = keeper.keeper_step(primary(peer=PEER_GONE, **{"async": True}), {"failures": 5}, 3, strict=True)
    assert decision["steps"] == [("renew", False), ("sync",)], decision


def test_strict_mode_promotes_without_going_asynchronous():
    unused, decision = keeper.keeper_step(standby(), {"failures": 2}, 3, strict=True)
    assert steps(decision) == ["claim", "promote", "fence_peer", "renew", "after_command"], decision
    unused, decision = keeper.keeper_step(standby(lease=dict(HELD, holder="node2")), {"claimed_term": 4}, 3,
                                          strict=True)
    assert steps(decision) == ["promote", "renew", "after_command"], decision


@pytest.mark.parametrize("content, expected", [
    ('{"lease_seen": {"holder": "node1", "term": 4, "timeline": 2, "version": 1000}}',
     {"holder": "node1", "term": 4, "timeline": 2, "version": 1000}),
    ('{"lease_seen": {"holder": "node1", "version": 1000.5}}', None),
    ('{"lease_seen": {"holder": "node1", "version": true}}', None),
    ('{"lease_seen": null}', None),
    ('{"lease_seen": {"holder": "node1", "version": "soon"}}', None),
    ('{"role": "primary"}', None),
    ("[1, 2]", None),
    ("not json", None),
    (None, None),
])
def test_the_row_read_last_survives_a_restart(tmp_path, content, expected):
    path = tmp_path / "keeper.json"
    if content is not None:
        path.write_text(content)
    assert arbiter.kept_state(str(path)).get("lease_seen") == expected
