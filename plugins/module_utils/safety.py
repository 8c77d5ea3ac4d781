# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safety core: when a standby may be promoted, when a primary must fence itself,
when a node may start as a primary, and what synchronous replication may promise.

Pure functions, no I/O. The pgpool hook, the node guard (pgha-guard), the start guard and
the simulator under tests/simulation call them with facts they read.

The lease. A standby *confirms* a primary while it is configured to follow it and its
replies (pg_stat_replication.reply_time, sent every wal_receiver_status_interval) keep
arriving. A primary stays writable only while a majority of the PostgreSQL nodes (itself
included) confirmed it within `lease_seconds`; otherwise its guard stops it and writes the
fence lock. A standby is *revoked* when its primary_conninfo is emptied and its WAL receiver
is gone: it can never confirm the old primary again. So when the failover side has revoked
enough standbys that no node it cannot reach could gather a majority, any such node has
stopped itself `revocation_wait()` seconds later, and promotion is safe although that node
never answered.

Fenced peers. An old primary whose fence was verified (lock written, postmaster gone) can
confirm nobody and cannot start until it is rebuilt. The failover that fenced it records it
on the new primary (with the new timeline); the guard counts it towards the majority, so a
primary that also loses its last standby keeps its lease. Rebuilding the node removes it
from the record before the node starts.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.cluster.plugins.module_utils import keeper, topology

DEFAULT_LEASE = {
    "lease_seconds": 3.0,        # a primary not confirmed by a majority for this long stops itself
    "guard_interval": 0.5,       # how often the guard checks (its decision may be this late)
    "stop_seconds": 1.0,         # an immediate stop takes at most this long
    "clock_margin": 0.1,         # clocks may run this much slower or faster (10 %)
    "receiver_timeout": 4.0,     # wal_receiver_timeout (a standby's WAL receiver gives up after it)
}


def majority(total):
    return total // 2 + 1


def lease_enforced(total):
    """A majority of two is both nodes: a lease would stop the primary whenever its only
    standby stops. Clusters of fewer than three nodes promote only after a verified fence."""
    return total >= 3


def pause_holds(total, answering_peers):
    """Whether a planned operation's marker may pause this primary's lease: only while the
    node reaches a majority of the cluster's hosts (answering_peers: peers whose host answered
    a probe). A playbook cannot remove its marker from a host it no longer reaches, while the
    others, unpaused, may promote: a primary cut off with a marker left on it must stop as
    the lease says."""
    return 1 + answering_peers >= majority(total)


def revocation_wait(lease):
    """Seconds after the last revocation until an unreachable primary has certainly stopped:
    its guard stamps a confirmation at the beat that sees it (up to one interval after the
    standby's last reply) and finds the lease expired at a beat (up to one more)."""
    return round(lease["lease_seconds"] * (1 + lease["clock_margin"]) + 2 * lease["guard_interval"]
                 + lease["stop_seconds"], 3)


def hear_seconds(lease):
    """How long a standby may have heard nothing from a primary that is alive for it. A WAL
    receiver that heard nothing for half its timeout asks its primary for a reply (a ping),
    which a live primary sends at once; one guard beat covers the answer's way and the read.
    A standby silent for longer has lost its primary, although its receiver still waits."""
    return round(lease["receiver_timeout"] / 2 + lease["guard_interval"], 3)


def annotate(nodes, names_by_address):
    """Survey facts plus what the gate reads: upstream (the node a standby's WAL receiver
    streams from), upstream_age (seconds since its last message) and follows (the node its
    primary_conninfo names)."""
    annotated = {}
    for name, facts in nodes.items():
        receiver = facts.get("wal_receiver") or {}
        streaming = receiver.get("status") == "streaming"
        annotated[name] = dict(facts, upstream=names_by_address.get(receiver.get("sender_host")) if streaming else None,
                               upstream_age=receiver.get("last_msg_age") if streaming else None,
                               follows=names_by_address.get(facts.get("primary_conninfo_host")))
    return annotated


# --- the primary's guard ---------------------------------------------------------------

def guard_step(state, role, replies, now, total, lease, paused=False, fenced=(), observed_at=None):
    """One beat of the guard on a node; returns (new state, action, reason).

    state: {"replies": {standby: last reply_time seen}, "confirmed": {standby: when it
    changed}, "majority_at": when a majority last confirmed, or None, "read_at": when the read
    behind "replies" began}; role: "primary",
    "standby" or None (PostgreSQL down); replies: {standby: reply_time} of the standbys
    streaming from this node and configured to follow it; fenced: peers recorded as fenced
    for this primary's timeline (fenced_peers). now: a monotonic clock; observed_at: when the
    read of the server began (a confirmation counts from then: a late read's replies are not
    younger than its start), now when not given.
    action: "keep" or "fence" (stop PostgreSQL immediately and write the fence lock).
    role "unknown": the server runs but could not be read (a stall, no connection slot):
    nothing new is confirmed and the lease runs on; it is fenced once the lease ran out.
    """
    if role == "unknown":
        return _unread_step(state, now, total, lease, paused)
    if role != "primary":
        return {"replies": {}, "confirmed": {}, "majority_at": None}, "keep", "not a primary"
    seen = now if observed_at is None else min(now, observed_at)
    # A reply new since the last read arrived after that read began: dated no later than one
    # beat after it (what the revocation wait allows), however late this read came.
    read_at = state.get("read_at")
    stamp = seen if read_at is None else min(seen, read_at + lease["guard_interval"])
    confirmed = dict((n, t) for n, t in state.get("confirmed", {}).items() if n in replies)
    for name, reply in replies.items():
        if reply is not None and reply != state.get("replies", {}).get(name):
            confirmed[name] = stamp
    fresh = sorted(n for n, t in confirmed.items() if now - t <= lease["lease_seconds"])
    standing = standing_fenced(fenced, replies)
    needed = confirmations_needed(total, standing)
    # A majority stood behind this primary as of the oldest of its newest `needed` confirmations.
    newest = sorted(confirmed.values(), reverse=True)[:needed]
    majority_at = state.get("majority_at")
    if majority_at is None or paused or needed == 0:
        majority_at = seen
    elif len(newest) == needed:
        majority_at = max(majority_at, newest[-1])
    new_state = {"replies": dict(replies), "confirmed": confirmed, "majority_at": majority_at, "read_at": seen}
    if not lease_enforced(total) or paused:
        return new_state, "keep", "lease not enforced" if not paused else "paused by maintenance"
    backing = fresh + ["%s (fenced)" % n for n in standing]
    if now - majority_at > lease["lease_seconds"]:
        return new_state, "fence", ("not confirmed by a majority of %d nodes for %.1f s (confirmed by: %s)"
                                    % (total, now - majority_at, ", ".join(backing) or "nobody"))
    return new_state, "keep", "confirmed by %s" % (", ".join(backing) or "itself (grace)")


def _unread_step(state, now, total, lease, paused):
    majority_at = state.get("majority_at")
    if majority_at is None or paused or not lease_enforced(total):
        new_state = dict(state, majority_at=now) if paused and majority_at is not None else state
        return new_state, "keep", "could not read this server"
    if now - majority_at > lease["lease_seconds"]:
        return state, "fence", ("could not read this server and not confirmed by a majority of %d nodes for %.1f s"
                                % (total, now - majority_at))
    return state, "keep", "could not read this server (last confirmed %.1f s ago)" % (now - majority_at)


def restored_lease(saved, boot, now, lease_seconds, postmaster_started):
    """The lease state a guard that comes back may go on with: the state it saved (expired,
    maybe: a guard gone longer than a lease, crash-looping or hung, renews nothing by coming
    back), or {} to start over as on a new primary.

    saved: {"boot_id", "saved_at", "majority_at", "read_at", "replies"} (clock values of the
    boot that wrote it); boot: this boot's id; now: the same clock; postmaster_started: when
    this node's postmaster started on that clock, None when none runs. It starts over after a
    reboot (the clock counts from the boot), and after more than a lease only if a postmaster
    started since the save (through the start guard, which a majority confirmed) or none runs.
    """
    try:
        if saved["boot_id"] != boot or now < saved["saved_at"]:
            return {}
        if now - saved["saved_at"] > lease_seconds and (
                postmaster_started is None or postmaster_started >= saved["saved_at"]):
            return {}
        return {"majority_at": min(now, float(saved["majority_at"])), "read_at": min(now, float(saved["read_at"])),
                "replies": dict(saved["replies"])}
    except (KeyError, TypeError, ValueError):
        return {}


def peer_replies(rows, peers):
    """{standby: reply_time} of the pg_stat_replication rows that are the cluster's own
    standbys: the application_name of a peer, from that peer's address. Another replication
    client (pg_receivewal, a backup, a logical subscriber) never confirms a primary."""
    return dict((row["application_name"], row["reply"]) for row in rows
                if peers.get(row["application_name"]) and str(row.get("client_addr") or "").split("/", maxsplit=1)[0]
                == peers[row["application_name"]])


def standing_fenced(fenced, replies):
    """Fenced peers that count as such: one that streams again (rebuilt) is a standby."""
    return sorted(n for n in fenced if n not in replies)


def confirmations_needed(total, fenced):
    """Standbys that must confirm a primary besides itself and its fenced peers."""
    return max(0, majority(total) - 1 - len(fenced))


def lease_without_standbys(total, fenced):
    """Whether a primary keeps its lease with no standby confirming it: fewer than three
    nodes (no lease) or enough fenced peers to make the majority with itself."""
    return not lease_enforced(total) or confirmations_needed(total, fenced) == 0


def fenced_peers(record, timeline, name):
    """The peers a primary on `timeline` may count as fenced, from the record the failover
    wrote (lines: the new primary's timeline, then one fenced node per line). A record of
    another timeline is an earlier primary's (this node was promoted again since): ignored."""
    lines = [line.strip() for line in (record or "").splitlines() if line.strip()]
    if not lines or not timeline or lines[0] != str(timeline):
        return []
    return sorted(set(n for n in lines[1:] if n != name))


def fenced_record(record, timeline, fenced):
    """What a primary on `timeline` records once `fenced` are proven fenced: the names its
    record already holds for this timeline (an old primary fenced later, by the hook's
    background retry, joins those the failover fenced) and the new ones."""
    return sorted(set(fenced_peers(record, timeline, None)) | set(fenced))


# --- the start guard -------------------------------------------------------------------

def start_decision(local, peers, total, arbiter=None, start_refusal=keeper.start_refusal):
    """May this node start PostgreSQL? Returns {"start", "write_lock", "retry", "reason"}.

    local: {"standby_signal", "fence_lock", "timeline", "name", "bootstrap" (a new cluster's
    first primary, before its standbys exist), "fenced_peers" (old primaries proven fenced by
    the failover that promoted it, for its timeline), "forced" (two nodes: the operator's start.yml
    force=true starts it without its peer's confirmation, never against a lock, another
    primary or a newer timeline)}; peers: {name: {"reachable",
    "in_recovery", "timeline", "follows"}} where follows names the node a standby is
    configured to stream from. arbiter: keeper mode only, {"lease": the arbiter's lease row,
    None when it does not answer; "seen": the row this node's keeper read last, which must
    allow the start too when the arbiter's row is older}: the lease decides who may be primary.
    """
    if local.get("standby_signal"):
        return _start(True, "starts as a standby")
    if local.get("fence_lock"):
        return _start(False, "fenced (%s): rebuild it as a standby" % local["fence_lock"])
    answering = dict((n, p) for n, p in peers.items() if p.get("reachable"))
    if arbiter is not None:
        decided = _start_by_lease(local, answering, arbiter, start_refusal)
        if decided:
            return decided
    other_primaries = sorted(n for n, p in answering.items() if p.get("in_recovery") is False)
    if other_primaries:
        return _start(False, "%s already runs as primary: rebuild this node" % ", ".join(other_primaries), lock=True)
    newer = sorted(n for n, p in answering.items() if (p.get("timeline") or 0) > (local.get("timeline") or 0))
    if newer:
        return _start(False, "%s is on a newer timeline than this node (%s): a failover happened, rebuild "
                      "this node" % (", ".join(newer), local.get("timeline")), lock=True)
    if local.get("bootstrap"):
        return _start(True, "first start of a new cluster (bootstrap marker): its standbys do not exist yet")
    # Old primaries the failover that promoted this node proved fenced (its record for this
    # timeline, fenced_peers) count as confirmations, as for the lease.
    confirming = sorted(set(n for n, p in answering.items() if p.get("follows") == local.get("name"))
                        | set(local.get("fenced_peers") or ()))
    # Two nodes have no majority but both: a peer that does not answer may have been promoted
    # while this node was off (powered off by the fence command: no lock written) and be cut
    # away now. Only a standby following this node (or the record of it fenced) proves there
    # is no other primary.
    needed = majority(total) if lease_enforced(total) else min(total, 2)
    if 1 + len(confirming) >= needed:
        return _start(True, "confirmed by %s" % ", ".join(confirming or ["itself"]))
    waiting = "only %d of %d nodes confirm this primary (standbys following it or fenced: %s)" % (
        1 + len(confirming), total, ", ".join(confirming) or "none")
    if lease_enforced(total):
        # No force: a primary without a majority loses its lease at once; the lost nodes must
        # leave the inventory instead.
        return _retry("%s; a majority is needed; start the standbys first (nodes lost for good must leave the "
                      "inventory: site.yml)" % waiting)
    waiting += ("; with two nodes the peer must answer as a standby following it (it may have been promoted while "
                "this node was off)")
    # Two nodes: the operator may vouch that the peer is lost for good.
    if local.get("forced"):
        return _start(True, "started by the operator's force although %s" % waiting)
    return _retry("%s; start the standby first or, if it is lost for good, pgha.cluster.start --limit %s -e "
                  "force=true" % (waiting, local.get("name")))


def _start_by_lease(local, answering, arbiter, start_refusal):
    """Keeper mode: the arbiter's lease names the primary (arbiter: {"lease", "seen": the
    row this node's keeper read last}). None: no lease row yet (the checks of the peers decide)."""
    newer = sorted(n for n, p in answering.items() if (p.get("timeline") or 0) > (local.get("timeline") or 0))
    if newer:
        return _start(False, "%s is on a newer timeline than this node (%s): a failover happened, rebuild this node"
                      % (", ".join(newer), local.get("timeline")), lock=True)
    if local.get("bootstrap"):
        return None     # a new cluster's first start: no lease was ever granted
    lease, seen = arbiter.get("lease"), arbiter.get("seen")
    refusal = start_refusal(lease, local.get("name"), local.get("timeline"))
    if refusal and lease is None:
        return _retry(refusal)
    if not refusal and keeper.lease_behind(lease, seen):
        # An older row may name this node although its peer took over since: the row this
        # node read last must allow the start too.
        refusal = start_refusal(seen, local.get("name"), local.get("timeline"))
        refusal = refusal and "%s (%s)" % (refusal, keeper.behind_reason(lease, seen))
    if refusal:
        return _start(False, refusal, lock=True)
    if lease is None or lease.get("holder") is None:
        return None
    # A peer still answering as a primary without the lease fences itself (its keeper).
    return _start(True, "the arbiter's lease allows it (holder %s, timeline %s)" % (lease["holder"],
                                                                                    lease.get("timeline")))


def _start(allowed, reason, lock=False):
    return {"start": allowed, "write_lock": lock, "retry": False, "reason": reason}


def _retry(reason):
    return {"start": False, "write_lock": False, "retry": True, "reason": reason}


# --- the promotion gate ------------------------------------------------------------------

def possible_confirmers(node, nodes, revoked, fenced):
    """Nodes that might still confirm `node` as primary: not revoked, not fenced."""
    return sorted(n for n in nodes if n != node and n not in revoked and n not in fenced)


def promotion_gate(nodes, plan, fenced, revoked, now, total, lease, surveyed_at=None, unlocked=()):
    """Whether the failover may promote plan["candidate"] now.

    nodes: facts from the failover side's survey (reachable, in_recovery, upstream: the node
    a standby's WAL receiver streams from, upstream_age: seconds since its last message);
    plan: topology.plan_failover's result; fenced: nodes proven unable to take writes (fence
    verified: lock written and postmaster gone; or STONITH confirmed); revoked: {name: time
    its revocation was verified}; now: the failover side's monotonic clock; surveyed_at: when
    the survey behind `nodes` began (its ages are as of then), now when not given; unlocked:
    fenced nodes without a lock (the fence_command powered them off: powered on, nothing
    stops them from starting as a primary if standbys still follow them).

    Returns {"action": "promote" | "revoke" | "wait" | "refuse", "nodes", "seconds", "reason",
    "veto"}; veto: the wait is for a standby that still hears the old primary (it heard it
    within hear_seconds: waiting longer means the primary is alive for it).
    """
    unproven = sorted(n for n in plan["fence"] if n not in fenced)
    too_few = too_few_running(nodes, total, lease)
    if too_few:
        return _gate("refuse", reason=too_few)
    if not unproven:
        following = unlocked_followers(nodes, plan, revoked, unlocked)
        if following:
            return _gate("revoke", nodes=following, reason="%s is powered off, with no lock: stop %s from following "
                         "it first (its start guard finds no standby to confirm it when it is powered on)" % (
                             ", ".join(sorted(set(unlocked) & set(plan["fence"]))), ", ".join(following)))
        return _gate("promote", reason="every node that may be a primary is fenced: %s"
                     % (", ".join(plan["fence"]) or "none"))
    if lease is None or not lease_enforced(total):
        return _gate("refuse", reason="%s could not be fenced and no fence_command confirmed it; a cluster of "
                     "%d nodes cannot rely on the lease" % (", ".join(unproven), total))
    hearing = sorted(n for n, f in nodes.items() if f.get("reachable") and f.get("in_recovery")
                     and f.get("upstream") in unproven and n not in revoked
                     and (f.get("upstream_age") is None or f["upstream_age"] < hear_seconds(lease)))
    if hearing:
        # Read again once the one that heard it last would have been silent for hear_seconds
        # (ages grow by the clock while nothing arrives; an unknown age is read after a beat).
        ages = [nodes[n].get("upstream_age") for n in hearing]
        since = 0.0 if surveyed_at is None else max(0.0, now - surveyed_at)
        seconds = lease["guard_interval"] if None in ages else max(0.05, hear_seconds(lease) - min(ages) - since + 0.05)
        return _gate("wait", seconds=seconds, veto=True,
                     reason="%s still hear(s) %s: it is alive for them" % (", ".join(hearing), ", ".join(unproven)))
    revocable = sorted(n for n, f in nodes.items() if f.get("reachable") and f.get("in_recovery"))
    would_revoke = set(revoked) | set(revocable)
    blocked = [n for n in unproven if len(possible_confirmers(n, nodes, would_revoke, fenced)) >= majority(total) - 1]
    if blocked:
        return _gate("refuse", reason="%s cannot be fenced and %s might still confirm it as primary: a majority of "
                     "%d nodes is not on this side" % (", ".join(blocked), ", ".join(
                         possible_confirmers(blocked[0], nodes, would_revoke, fenced)), total))
    missing = sorted(set(revocable) - set(revoked))
    if missing:
        return _gate("revoke", nodes=missing, reason="stop %s from following %s" % (
            ", ".join(missing), ", ".join(unproven)))
    waited = round(now - max(revoked.values()), 3)
    if waited < revocation_wait(lease):
        return _gate("wait", seconds=max(0.001, revocation_wait(lease) - waited),
                     reason="lease of %s runs out %.1f s after the last revocation" % (
                         ", ".join(unproven), revocation_wait(lease)))
    return _gate("promote", reason="%s stopped itself: not confirmed by a majority for %.1f s" % (
        ", ".join(unproven), waited))


def unlocked_followers(nodes, plan, revoked, unlocked):
    """Standbys to revoke before a promotion while a node to fence was only powered off (no
    lock: powered on, a standby still following it would let its start guard start it)."""
    if not set(unlocked) & set(plan["fence"]):
        return []
    return [n for n in topology.standbys(nodes) if n not in revoked]


def too_few_running(nodes, total, lease):
    """Why no new primary can hold a lease with the standbys that run now, or None."""
    running = sorted(n for n, f in nodes.items() if f.get("reachable") and f.get("in_recovery"))
    if lease is not None and lease_enforced(total) and len(running) < majority(total):
        return ("only %s of %d servers run: a new primary needs a majority to confirm it and would stop itself"
                % (", ".join(running) or "none", total))
    return None


def _gate(action, nodes=(), seconds=0.0, reason="", veto=False):
    return {"action": action, "nodes": list(nodes), "seconds": round(seconds, 3), "reason": reason, "veto": veto}


# --- synchronous replication ---------------------------------------------------------------

def sync_quorum_refusal(nodes, plan, sync_required, sync_names, failed_timeline=None):
    """Why promoting plan["candidate"] could lose an acknowledged commit, or None.

    With `ANY k (s1..sn)` every commit reached k of the n listed standbys, so any n-k+1 of
    them include one that has it: the candidate (the most advanced reachable one) has every
    acknowledged commit only when at least n-k+1 listed standbys are reachable. A candidate
    on an older timeline than the failed primary never streamed from it: it lacks what the
    failed primary had when it was promoted.
    """
    if not sync_required or not sync_names:
        return None
    candidate_timeline = nodes[plan["candidate"]].get("timeline") or 0
    if failed_timeline and candidate_timeline < failed_timeline:
        return ("%s is on timeline %d, older than the failed primary's %d: it never streamed from it and may lack "
                "acknowledged commits (force=true to accept)" % (plan["candidate"], candidate_timeline, failed_timeline))
    listed = [n for n in sync_names if n in nodes]
    seen = [n for n in listed if nodes[n].get("reachable") and nodes[n].get("in_recovery")]
    needed = len(listed) - sync_required + 1
    if len(seen) >= needed:
        return None
    return ("synchronous quorum ANY %d of %s: only %s reachable, %d needed to be sure the candidate has every "
            "acknowledged commit; promoting %s may lose commits (force=true to accept)" % (
                sync_required, ", ".join(listed), ", ".join(seen) or "none", needed, plan["candidate"]))


def sync_policy(strict, streaming_standbys, configured, lease_held=True, quiet_for=None, hold=0.0):
    """synchronous_standby_names the primary should run with.

    strict: writes wait while no listed standby streams (the promise: no acknowledged commit
    is ever on one node only). Not strict: with none streaming, replication turns
    asynchronous so writes go on, and comes back once one streams again. lease_held: the
    primary keeps its lease without those standbys (its fenced peers make the majority);
    otherwise its guard stops it within the lease, and commits acknowledged meanwhile
    would exist on a stopped node only: it stays synchronous. quiet_for: seconds since a
    listed standby last streamed (or the node became primary); within `hold` of that it
    stays synchronous (the moments after a promotion, before the standbys are repointed).
    """
    if strict or not configured or not lease_held:
        return configured
    recent = quiet_for is not None and quiet_for <= hold
    return configured if streaming_standbys or recent else ""
