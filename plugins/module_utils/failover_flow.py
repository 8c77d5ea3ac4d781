# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The automatic failover as a sequence of requests: survey, fence, revoke, wait, promote.

`failover_steps` is a generator: it yields a request tuple and receives its result, and
holds every decision (plan, quorum rule, promotion gate) without doing any I/O. The pgpool
hook runs it against the real servers with `drive`; the simulator under tests/simulation
runs the very same generator against simulated nodes and a simulated clock.

Requests and what they return:
  ("now",)                      -> the executor's monotonic clock, seconds
  ("survey", [nodes])           -> {node: facts} (reachable, in_recovery, host_answers,
                                   timeline, received_lsn_bytes, upstream, upstream_age,
                                   ...); the nodes listed are not read again: their facts
                                   of the last survey stand
  ("fence", [nodes])            -> {name: {"kind": "primary" | "standby", "timeline",
                                   "powered_off"}} of the nodes proven unable to take writes
                                   (a primary: lock written, postmaster gone, or powered off
                                   by the fence command; a standby: told to follow nobody,
                                   like "revoke"); timeline from pg_controldata. A new
                                   attempt for each node (none running), waited for
  ("fence_background", [nodes], wait)
                                -> the same for attempts in the background: one starts for
                                   each node never tried in this failover; the verified
                                   ones among those that ended; wait: until they ended
  ("revoke", [nodes])           -> names whose WAL receiver is verifiably gone
  ("sleep", seconds)            -> None
  ("promote", node)             -> True when it is a primary now
  ("detach", node)              -> None: whoever waits for the failover may go on with `node`
                                   as the primary (pgpool's failover); the steps after it
                                   are best effort and run on their own
  ("record", node, [nodes])      -> None: tell the new primary which old primaries are fenced
                                   for good, with a lock (safety.fenced_peers; best effort:
                                   without the record its guard counts on live standbys only)
  ("repoint", [nodes], primary) -> None (best effort: follow_primary retries)
  ("checkpoint", node)          -> None: its control file has the new timeline (pg_rewind
                                   reads it there)
  ("log", message)              -> None
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.cluster.plugins.module_utils import fencing, safety, topology


def failover_steps(failed, total, lease, max_seconds, sync_required=0, sync_names=(), force=False, candidate=None,
                   fence_device=False):
    """The failover of `failed` (None: the node the standbys follow, topology.followed_primary);
    sync_names: the synchronous standbys configured (the failed node is left out); returns {"result":
    "promoted" | "none" | "refused", ...}. candidate and force come from an operator
    (failover.yml); force also overrides the quorum rule and a refusal of the gate, saying
    what it overrides. pgpool's hook never forces. fence_device: a fence_command may power
    a node off (it starts at once for a silent host)."""
    facts, started = yield from _survey([])
    surveyed_at = started
    failed = failed or topology.followed_primary(facts)
    sync_names = [n for n in sync_names if n != failed]
    try:
        plan = topology.plan_failover(facts, failed_node=failed, candidate=candidate, force=force)
    except topology.Refusal as exc:
        return _refused("plan", str(exc))
    if plan["action"] == "none":
        return {"result": "none", "reason": plan["reason"]}
    yield ("log", "plan: promote %s, fence %s, follow %s" % (
        plan["candidate"], ", ".join(plan["fence"]) or "nobody", ", ".join(plan["follow"]) or "nobody"))
    refusal = None if force else _refusal_before_fence(facts, plan, total, lease, sync_required, sync_names)
    if refusal:
        return refusal
    first = fence_first(facts, plan["fence"], fence_device)
    fenced, tried, voided, revoked, forced = {}, set(first), set(), {}, None
    if first:
        fenced = dict((yield ("fence", first)) or {})
    # Each pass decides on facts read after the last fence landed: the fence may have stopped
    # a node that had come back, and a primary stopped late may have had commits acknowledged
    # by a standby that is not the candidate.
    fresh = not first
    while True:
        if not fresh:
            standing, unlocked = _standing(facts, fenced, revoked), _unlocked(fenced)
            facts, surveyed_at = yield from _survey(standing)
            facts.update((n, dict(POWERED_OFF_FACTS)) for n in standing if n in unlocked)
            given_back = sorted(n for n in revoked if _follows_again(facts.get(n) or {}))
            if given_back:
                # Pointed at a primary again (another hook's undo, an operator): it may confirm
                # the old primary again; revoked anew, the lease wait counts from then.
                yield ("log", "%s follow(s) a primary again: revoking again" % ", ".join(given_back))
                revoked = dict((n, at) for n, at in revoked.items() if n not in given_back)
            back = [n for n in unlocked if n not in standing and not fencing.silent(facts.get(n) or {})]
            if back:
                # Powered on again (or never off): its power-off proves nothing any more. Its
                # host answers: a fence over ssh may lock it (once; then its lease decides).
                yield ("log", "%s answer(s) again after the power-off" % ", ".join(back))
                for node in back:
                    del fenced[node]
                again = sorted(set(back) - voided)
                voided |= set(back)
                if again:
                    fenced.update((yield ("fence", again)) or {})
                    continue
        fresh = False
        stop, primary = None, failed
        try:
            plan = topology.plan_failover(facts, failed_node=failed, candidate=candidate, force=force)
            if plan["action"] == "none":
                stop, primary = {"result": "none", "reason": plan["reason"]}, plan["primary"]
        except topology.Refusal as exc:
            stop = _refused("plan", str(exc))
        # A synchronous standby lost meanwhile (the candidate itself, maybe) may hold commits
        # the new candidate lacks.
        refusal = None if stop else _quorum_refusal(facts, fenced, plan, failed, sync_required, sync_names)
        if refusal and force and refusal != forced:
            forced = refusal
            yield ("log", "forced by the operator: %s" % refusal)
        elif refusal and not force:
            stop = _refused("quorum", refusal)
        if stop:
            if (yield from _late_fences(tried - voided, fenced)):
                continue
            return (yield from _undo(revoked, fenced, primary, stop))
        # A silent host's ssh attempt (it tells only after its timeout) runs beside these
        # steps: started here, its result taken once it is there.
        tried |= set(_unfenced(plan, fenced))
        pending = sorted(tried - set(fenced) - voided)
        if pending:
            gained = (yield ("fence_background", pending, False)) or {}
            gained = dict((n, result) for n, result in gained.items() if n in pending)
            if gained:
                fenced.update(gained)
                continue
        now = yield ("now",)
        gate = safety.promotion_gate(facts, plan, fenced, revoked, now, total, lease, surveyed_at,
                                     unlocked=_unlocked(fenced))
        if gate["action"] == "promote":
            break
        limit = lease["receiver_timeout"] + 1.5 if gate.get("veto") else max_seconds
        if gate["action"] == "wait" and now + gate["seconds"] - started > limit:
            gate = dict(gate, action="refuse", reason="%s; gave up after %.1f s" % (gate["reason"], limit))
        if gate["action"] == "refuse" and force:
            # Forced, yet a node powered off without a lock gets no standby to confirm it.
            following = safety.unlocked_followers(facts, plan, revoked, _unlocked(fenced))
            if not following:
                gate = dict(gate, reason="forced by the operator although: %s" % gate["reason"])
                break
            gate = dict(gate, action="revoke", nodes=following, reason="forced by the operator although: %s; first "
                        "stop %s from following the node powered off" % (gate["reason"], ", ".join(following)))
        if gate["action"] == "refuse":
            if (yield from _late_fences(tried - voided, fenced)):
                continue
            return (yield from _undo(revoked, fenced, failed, _refused("gate", gate["reason"])))
        yield ("log", gate["reason"])
        if gate["action"] == "revoke":
            done = (yield ("revoke", gate["nodes"])) or ()
            at = yield ("now",)
            revoked.update((n, at) for n in done)
            left = sorted(set(gate["nodes"]) - set(done))
            if left and force:
                # The operator accepts it: counted as revoked, the failover goes on.
                yield ("log", "forced by the operator although %s could not be stopped from following %s"
                       % (", ".join(left), failed))
                revoked.update((n, at) for n in left)
            elif left:
                if (yield from _late_fences(tried - voided, fenced)):
                    continue
                return (yield from _undo(revoked, fenced, failed, _refused(
                    "gate", "could not stop %s from following %s" % (", ".join(left), failed))))
        else:
            yield ("sleep", gate["seconds"])
    yield ("log", gate["reason"])
    if not (yield ("promote", plan["candidate"])):
        yield from _late_fences(tried - voided, fenced)
        return (yield from _undo(revoked, fenced, failed, _refused("promote", "%s could not be promoted"
                                                                   % plan["candidate"])))
    yield ("detach", plan["candidate"])
    # The record first (milliseconds): until it lands the new primary's guard counts on live
    # standbys only, and a repoint may wait seconds for a slow one. Then the standbys: in
    # synchronous mode the first commit waits for one to stream.
    yield ("record", plan["candidate"], _locked(fenced))
    yield ("repoint", sorted(set(plan["follow"]) | _standbys(fenced)), plan["candidate"])
    yield ("checkpoint", plan["candidate"])
    return {"result": "promoted", "candidate": plan["candidate"], "fenced": sorted(fenced),
            "revoked": sorted(revoked), "reason": gate["reason"]}


def _quorum_refusal(facts, fenced, plan, failed, sync_required, sync_names):
    """safety.sync_quorum_refusal for this failover. A node fenced as a primary on an older
    timeline than the failed one never streamed from it (one powered off by the fence command
    told no timeline: it may hold acknowledged commits)."""
    failed_timeline = _timeline(facts, fenced, failed)
    may_have_acked = [n for n in sync_names if not (
        failed_timeline and fenced.get(n, {}).get("kind") == "primary"
        and fenced[n].get("timeline") is not None and fenced[n]["timeline"] < failed_timeline)]
    return safety.sync_quorum_refusal(facts, plan, sync_required, may_have_acked, failed_timeline)


def _refusal_before_fence(facts, plan, total, lease, sync_required, sync_names):
    """A refusal that no fence could lift, made before any node is stopped: a primary fenced
    for a failover that is then refused stays down (pgpool asks once), while one left alone
    comes back by itself (crash recovery, a start guard waiting for its peers at boot). The
    best a fence could show: every node it stops had never streamed from the failed one."""
    reason = safety.too_few_running(facts, total, lease)
    if reason:
        return _refused("gate", reason)
    best = [n for n in sync_names if n not in plan["fence"]]
    reason = safety.sync_quorum_refusal(facts, plan, sync_required, best)
    return _refused("quorum", reason) if reason else None


# What a node the fence command powered off is until it is read again.
POWERED_OFF_FACTS = {"reachable": False, "in_recovery": None, "role": "unknown", "host_answers": False,
                     "reason": "powered off by the fence command"}


def _survey(standing):
    """(facts, when the survey began: the ages in them are as of then)."""
    at = yield ("now",)
    facts = yield ("survey", standing)
    return facts, at


def fence_first(facts, nodes, fence_device):
    """The nodes fenced before anything else, waited for: all of them with a fence device;
    without one, those whose host answers (a fence over ssh takes milliseconds there). A
    silent host (powered off, cut away) could tell only after ssh's timeout: its attempt runs
    beside the gate's steps."""
    return sorted(n for n in nodes if fence_device or not fencing.silent(facts.get(n) or {}))


def _unfenced(plan, fenced):
    return sorted(n for n in plan["fence"] if n not in fenced)


def _follows_again(facts):
    """A revoked standby that answers with a primary to follow or a WAL receiver streaming."""
    return bool(facts.get("reachable") and (facts.get("follows") or facts.get("upstream")))


def _unlocked(fenced):
    """Nodes the fence command powered off: no lock on them."""
    return sorted(n for n, result in fenced.items() if result.get("powered_off"))


def _standing(facts, fenced, revoked):
    """Nodes the next survey does not read again. Before any revocation: those just powered
    off (the fence command's probe saw them off); after it, silent nodes, which can keep no
    lease any more, except those powered off without a lock: read again, they must still be
    off (one powered on before the revocation could have started as a primary)."""
    unlocked = _unlocked(fenced)
    if not revoked:
        return unlocked
    return sorted(n for n, f in facts.items() if fencing.silent(f) and n not in unlocked)


def _locked(fenced):
    """Old primaries fenced for good: the lock written, the postmaster gone. One the fence
    command powered off has no lock: powered on, it is not fenced (the hook's background
    fence writes its lock then, and records it)."""
    return sorted(n for n, result in fenced.items() if result.get("kind") == "primary" and not result.get("powered_off"))


def _standbys(fenced):
    return set(n for n, result in fenced.items() if result.get("kind") == "standby")


def _timeline(facts, fenced, node):
    """The node's timeline from the survey or, for a node that does not answer, its fence report."""
    if facts.get(node, {}).get("reachable"):
        return facts[node].get("timeline")
    return fenced.get(node, {}).get("timeline")


# After a refused failover, pgpool's hook tries it again this many seconds apart (the last
# one repeats) while the failed primary does not answer: pgpool asks only once.
RETRY_SECONDS = (5, 10, 20, 30)
# A failed primary whose host answers gets this long after the refusal to come back by itself
# (crash recovery; at power-up its start guard waits up to 40 s for its peers) before a
# retry may fence it.
COMEBACK_SECONDS = 60.0


def after_refusal(facts, failed, waited):
    """What follows a refused failover of `failed`, `waited` seconds later, from a fresh
    survey: "attach" (it answers as the only primary: pgpool gets it back), "give up" (another
    node runs as primary), "retry" (it does not come back: what refused the failover, a
    standby down or one still hearing it, may have passed) or "wait" (its host answers: it
    may be starting, give it COMEBACK_SECONDS)."""
    live = topology.primaries(facts)
    if [n for n in live if n != failed]:
        return "give up"
    if live:
        return "attach"
    mine = facts.get(failed) or {}
    if (mine.get("reachable") or mine.get("host_answers")) and waited < COMEBACK_SECONDS:
        return "wait"
    return "retry"


def _refused(stage, reason):
    return {"result": "refused", "stage": stage, "reason": reason}


def _late_fences(tried, fenced):
    """Before a decision other than a promotion, the fence attempts still running end (one
    landing later would stop a primary the refusal gives back); those they verified join
    `fenced`. True when there are any: the failover decides again, on fresh facts."""
    running = sorted(set(tried) - set(fenced))
    late = ((yield ("fence_background", running, True)) or {}) if running else {}
    late = dict((n, result) for n, result in late.items() if n in running)
    fenced.update(late)
    return bool(late)


def _undo(revoked, fenced, primary, result):
    """A refused failover gives the standbys it revoked (or fenced as standbys) back to the
    primary they followed."""
    given_back = sorted((set(revoked) | _standbys(fenced)) - set([primary]))
    if given_back and primary:
        yield ("repoint", given_back, primary)
    return result


def drive(steps, executor):
    """Run a request generator against an executor: executor(request) -> result."""
    try:
        request = next(steps)
        while True:
            request = steps.send(executor(request))
    except StopIteration as stop:
        return stop.value
