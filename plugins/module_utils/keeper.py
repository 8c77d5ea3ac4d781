# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keeper's decisions for a two-node cluster with an arbiter (pure functions, no I/O).

The arbiter is a small PostgreSQL database on a third host holding one lease row per
cluster: holder (node name), term (bumped on every change of holder), timeline (the
holder's at its last renewal), expires_at (the arbiter's clock) and synchronous: whether
the holder's standby had every commit the holder acknowledged, at its last renewal.
Every change is a compare-and-set in one statement (module_utils/arbiter.py).

The rules that make a split brain impossible:
- The primary renews the lease every beat. It turns replication asynchronous (writes stop
  waiting for a dead standby) only after a renewal that sets synchronous = false has
  succeeded; from then on no standby may take the lease.
- A standby promotes itself only after it took the lease, and it can take it only when
  it expired at the arbiter (the primary stopped renewing: it is dead, or cut off from the
  arbiter) and the last renewal said synchronous = true. An old primary that is still
  running then runs synchronously: its commits wait for a standby that no longer follows
  it, so nothing is acknowledged on two nodes.
- A node that cannot reach the arbiter never promotes itself and never goes asynchronous.
- A primary that finds the lease held by its peer on a timeline at least its own was
  replaced: it fences itself. The holder fences a peer that runs as a second primary.
- A row with a lower version than one a node already read, unchanged since its previous
  read (the arbiter restored from a backup), may name an old holder or an old
  "synchronous": a standby never acts on it, and the start guard needs the row the node
  remembers to allow a start too; the primary's next renewal makes the row current again.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import lsn_to_int


def lease_seconds(keepalives_time, keepalives_count):
    """The lease lasts as long as the standby's patience: failover stays within the keepalive budget."""
    return float(keepalives_time) * int(keepalives_count)


REMEMBERED = ("holder", "term", "timeline", "version")


def remembered(lease):
    """What a node keeps of the latest lease row it read (version: counted up by every change)."""
    return dict((k, lease.get(k)) for k in REMEMBERED)


def lease_behind(lease, seen, previous=None):
    """Whether the lease row is older than the row this node remembers (seen): the arbiter
    was restored from a backup. Such a row may name a holder, or say synchronous, when that
    is no longer true. previous: the version read the beat before; a row that changed since
    has a live writer (a primary renewing it, or the row deleted and created again): it is
    current."""
    version, known = (lease or {}).get("version"), (seen or {}).get("version")
    if version is None or known is None or version >= known:
        return False
    return previous is None or version <= previous


def behind_reason(lease, seen):
    return ("the arbiter's lease row (holder %s, term %s, version %s) is older than the one this node read "
            "(holder %s, term %s, version %s): the arbiter was restored from a backup" % (
                lease.get("holder"), lease.get("term"), lease.get("version"), seen.get("holder"), seen.get("term"),
                seen.get("version")))


def _decision(state, steps, reason, warn=False):
    return state, {"steps": list(steps), "reason": reason, "warn": warn}


def keeper_step(facts, state, count, strict=False):
    """One beat of the keeper. Returns (new state, {"steps", "reason", "warn"}).

    facts: name, role ("primary", "standby" or None: the local server does not answer),
    timeline, paused (a maintenance marker or a playbook's lock is in force), async (the
    primary runs with synchronous_standby_names overridden to ''), lsn (the primary's WAL
    flush position, bytes), peer {reachable, role, timeline, streaming (its WAL receiver
    streams from this primary), sync (this primary lists it as sync or quorum), flush_lsn},
    lease (None: the arbiter does not answer; {"holder": None}: no row yet; else holder,
    term, timeline, expired, synchronous, age, version: counted up by every change).
    state: failures (peer's consecutive failed beats), synced (the standby has every commit
    this primary acknowledged), unsynced_lsn (WAL position up to which it may not),
    lease_seen (keeper.remembered of the latest lease row read that was not behind it; the
    keeper keeps it across restarts), lease_read (the version of the row read last),
    claimed_term (the term this standby's claim makes, until it runs as primary; kept across
    restarts too: a claim whose promotion a crash cut short is finished).
    count: failed beats before acting (keepalives_count).
    strict: pgha_synchronous_mode_strict - never turn replication asynchronous: writes wait
    for the standby (or its replacement) rather than be acknowledged by one node alone.

    Steps for the executor, run in order, stopping at the first that fails:
    ("create", synchronous), ("renew", synchronous), ("claim", term, standby_takeover),
    ("async",), ("sync",), ("promote",), ("fence_peer",), ("fence_self",), ("after_command",).
    """
    # A keeper that just started does not know whether commits were acknowledged
    # asynchronously a moment ago: it treats its first beat as the switch back.
    state = dict({"failures": 0, "synced": False, "unsynced_lsn": None, "was_async": True}, **state)
    if facts.get("role") == "primary":
        state.pop("claimed_term", None)     # a promotion this node claimed is over
    if facts.get("paused"):
        return _decision(dict(state, failures=0), [], "paused by a maintenance marker or a playbook's lock")
    lease = facts.get("lease")
    if (lease or {}).get("version") is not None:
        behind = lease_behind(lease, state.get("lease_seen"), state.get("lease_read"))
        state["lease_read"] = lease["version"]
        if behind and facts.get("role") == "standby":
            return _decision(state, [], "%s; not acting on it until the primary renews it" % behind_reason(
                lease, state["lease_seen"]), warn=True)
        if not behind:
            state["lease_seen"] = remembered(lease)
    if facts.get("role") == "primary":
        return _primary_step(facts, state, count, strict)
    if facts.get("role") == "standby":
        return _standby_step(facts, state, count, strict)
    return _decision(dict(state, failures=0), [], "the local server does not answer: nothing to guard")


# --- on the primary ---------------------------------------------------------------------

def _synced(facts, state):
    """Whether the standby has every commit acknowledged so far (kept until the primary goes async)."""
    peer = facts.get("peer") or {}
    if facts.get("async"):
        return dict(state, synced=False, unsynced_lsn=facts.get("lsn"), was_async=True)
    if state.get("was_async"):
        # The first beat after the switch back: commits acknowledged asynchronously end here.
        return dict(state, synced=False, unsynced_lsn=facts.get("lsn"), was_async=False)
    caught_up = peer.get("sync") and peer.get("flush_lsn") is not None and \
        peer["flush_lsn"] >= (state.get("unsynced_lsn") or 0)
    return dict(state, synced=bool(state.get("synced") or caught_up))


def _peer_healthy(facts):
    peer = facts.get("peer") or {}
    return bool(peer.get("reachable") and peer.get("role") == "standby" and peer.get("streaming"))


def _peer_is_primary(facts):
    peer = facts.get("peer") or {}
    return bool(peer.get("reachable") and peer.get("role") == "primary")


def _primary_step(facts, state, count, strict):
    lease, name = facts.get("lease"), facts["name"]
    state = _synced(facts, state)
    if lease is None:
        return _primary_without_arbiter(facts, state)
    if lease.get("holder") is None:
        return _decision(state, [("create", state["synced"])], "taking the arbiter's lease for a new cluster")
    if lease["holder"] != name:
        if (facts.get("timeline") or 0) > (lease.get("timeline") or 0):
            return _decision(state, [("claim", lease["term"], False)],
                             "this primary is on timeline %s, newer than the lease holder %s's %s (switchover): "
                             "taking the lease" % (facts.get("timeline"), lease["holder"], lease.get("timeline")))
        return _decision(state, [("fence_self",)],
                         "the arbiter's lease belongs to %s (term %s, timeline %s, this node's %s): a failover "
                         "happened; fencing this old primary" % (lease["holder"], lease["term"],
                                                                 lease.get("timeline"), facts.get("timeline")),
                         warn=True)
    if _peer_is_primary(facts) and (facts["peer"].get("timeline") or 0) > (facts.get("timeline") or 0):
        # Promoted after this node: the lease row naming this node is an old one (an arbiter
        # restored from a backup); the peer takes it over (its timeline is newer).
        return _decision(state, [("fence_self",)],
                         "%s runs as a primary on timeline %s, newer than this node's %s: this is the old primary "
                         "(the arbiter's row is an old one); fencing this node" % (
                             _peer_name(facts), facts["peer"].get("timeline"), facts.get("timeline")), warn=True)
    if _peer_is_primary(facts):
        return _decision(state, [("renew", state["synced"]), ("fence_peer",)],
                         "%s also runs as a primary without the lease: fencing it" % _peer_name(facts), warn=True)
    if _peer_healthy(facts):
        steps = [("renew", state["synced"])] + ([("sync",)] if facts.get("async") else [])
        reason = "standby streams: back to synchronous replication" if facts.get("async") else "standby streams"
        return _decision(dict(state, failures=0), steps, reason)
    failures = state["failures"] + 1
    state = dict(state, failures=failures)
    if facts.get("async") and strict:
        return _decision(state, [("renew", False), ("sync",)],
                         "asynchronous without the standby, and writes must wait for one "
                         "(pgha_synchronous_mode_strict): back to synchronous replication", warn=True)
    if facts.get("async"):
        return _decision(state, [("renew", False)], "asynchronous while the standby does not stream")
    if failures < count:
        return _decision(state, [("renew", state["synced"])],
                         "standby does not stream: failed beat %d of %d" % (failures, count), warn=True)
    if strict:
        return _decision(state, [("renew", state["synced"])],
                         "standby gone for %d beats: writes wait for it (pgha_synchronous_mode_strict)" % failures,
                         warn=True)
    state = dict(state, synced=False, unsynced_lsn=facts.get("lsn"))
    return _decision(state, [("renew", False), ("async",)],
                     "standby gone for %d beats: asynchronous replication (the lease now says the standby may lack "
                     "commits, so it cannot take over)" % failures, warn=True)


def _primary_without_arbiter(facts, state):
    peer = facts.get("peer") or {}
    if _peer_is_primary(facts):
        mine, theirs = facts.get("timeline") or 0, peer.get("timeline") or 0
        if (mine, facts["name"]) < (theirs, _peer_name(facts)):
            return _decision(state, [("fence_self",)],
                             "the arbiter does not answer and %s also runs as a primary on timeline %s (this node: "
                             "%s): fencing this node" % (_peer_name(facts), theirs, mine), warn=True)
        return _decision(state, [], "the arbiter does not answer and %s also runs as a primary on an older timeline: "
                         "it fences itself" % _peer_name(facts), warn=True)
    if facts.get("async") and _peer_healthy(facts):
        return _decision(dict(state, failures=0), [("sync",)],
                         "the arbiter does not answer; the standby streams again: back to synchronous replication",
                         warn=True)
    return _decision(state, [], "the arbiter does not answer: no switch to asynchronous replication, no failover "
                     "until it does", warn=True)


def _peer_name(facts):
    return (facts.get("peer") or {}).get("name", "the peer")


# --- on the standby -------------------------------------------------------------------------

def _standby_step(facts, state, count, strict):
    lease, name = facts.get("lease"), facts["name"]
    peer = facts.get("peer") or {}
    if lease and lease.get("holder") == name and _peer_is_primary(facts) and (
            facts.get("receiving") or (peer.get("timeline") or 0) > (facts.get("timeline") or 0)):
        # A switchover made this old primary a standby of the peer, which takes the lease over.
        return _decision(dict(state, failures=0), [], "this standby streams from the primary %s (timeline %s): "
                         "it takes the lease over" % (_peer_name(facts), peer.get("timeline")))
    if lease and lease.get("holder") == name and state.get("claimed_term") == lease.get("term"):
        # This node took the lease as a standby and its promotion did not finish: finish it.
        # (A row naming it from when it ran as primary, before a switchover, promotes nothing.)
        steps = ([("fence_peer",)] if _peer_is_primary(facts) else []) + [("promote",), ("renew", False)] + \
            _unless_strict([("async",)], strict) + [("after_command",)]
        return _decision(dict(state, failures=0), steps, "this standby holds the lease: promoting it")
    if _peer_is_primary(facts):
        if not facts.get("receiving"):
            return _decision(dict(state, failures=0), [], "the primary answers but this standby does not stream from "
                             "it: the primary runs asynchronously and this standby cannot take over", warn=True)
        return _decision(dict(state, failures=0), [], "the primary answers")
    failures = state["failures"] + 1
    state = dict(state, failures=failures)
    if failures < count:
        return _decision(state, [], "the primary does not answer: failed beat %d of %d" % (failures, count), warn=True)
    if lease is None:
        return _decision(state, [], "the primary does not answer and neither does the arbiter: this node may be the "
                         "isolated one; not promoting", warn=True)
    refusal = promotion_refusal(lease)
    if refusal:
        return _decision(state, [], refusal, warn=True)
    # CLAIM counts the term up by one: the row naming this node with that term is this claim's.
    return _decision(dict(state, failures=0, claimed_term=lease["term"] + 1),
                     [("claim", lease["term"], True), ("promote",), ("fence_peer",), ("renew", False)]
                     + _unless_strict([("async",)], strict) + [("after_command",)],
                     "the primary is gone and its lease expired with this standby synchronous: taking the lease "
                     "and promoting")


def _unless_strict(steps, strict):
    """A new primary goes asynchronous (its peer is gone) unless writes must wait for a standby."""
    return [] if strict else steps


def promotion_refusal(lease):
    """Why a standby whose primary stopped answering may not take the lease, or None."""
    if lease.get("holder") is None:
        return "the primary never held the arbiter's lease (no row): not promoting"
    if not lease.get("expired"):
        return ("the primary renewed its lease %.1f s ago: it is alive for the arbiter (the link between the nodes "
                "is down); not promoting" % (lease.get("age") or 0.0))
    if not lease.get("synchronous"):
        return ("the primary's last lease says this standby was not synchronous (it ran asynchronously or the "
                "standby lagged): promoting could lose acknowledged commits; not promoting. Start the old primary "
                "again, or accept the loss and promote this node by hand (SELECT pg_promote())")
    return None


# --- the start guard in keeper mode -----------------------------------------------------------

def start_refusal(lease, name, timeline):
    """Why this node may not start as a primary according to the arbiter, or None.

    lease: None when the arbiter does not answer (the caller retries, then refuses)."""
    if lease is None:
        return "the arbiter does not answer: it must confirm who is primary"
    holder = lease.get("holder")
    if holder in (None, name) or (timeline or 0) > (lease.get("timeline") or 0):
        return None
    return ("the arbiter's lease belongs to %s on timeline %s (this node: %s): a failover happened, rebuild this "
            "node" % (holder, lease.get("timeline"), timeline))


# --- facts for keeper_step from the surveys --------------------------------------------------

def beat_facts(name, local, peer, peer_name, async_override, lease, paused):
    """keeper_step's facts from pg_facts.read_facts of this node (None: it does not answer) and
    of the peer (reachable False when it does not), the arbiter's lease row and the markers."""
    peer = peer or {"reachable": False}
    mine = [r for r in (local or {}).get("replication") or [] if r.get("application_name") == peer_name]
    receiver = (local or {}).get("wal_receiver") or {}
    peer_receiver = peer.get("wal_receiver") or {}
    return {
        "name": name,
        "role": (local or {}).get("role") if local else None,
        "timeline": (local or {}).get("timeline"),
        "lsn": (local or {}).get("current_lsn_bytes"),
        "async": bool(async_override),
        "receiving": receiver.get("status") == "streaming",
        "paused": bool(paused),
        "lease": lease,
        "peer": {
            "name": peer_name,
            "reachable": bool(peer.get("reachable")),
            "role": peer.get("role") if peer.get("reachable") else None,
            "timeline": peer.get("timeline"),
            "streaming": peer_receiver.get("status") == "streaming" and bool(mine)
            and mine[0].get("state") == "streaming",
            "sync": bool(mine) and mine[0].get("sync_state") in ("sync", "quorum"),
            "flush_lsn": lsn_to_int(mine[0].get("flush_lsn")) if mine else None,
        },
    }
