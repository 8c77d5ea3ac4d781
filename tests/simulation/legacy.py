"""The decisions as they were before the safety work (pgha 0.1.0), kept only so the
simulator proves it finds their split brains: promotion right after starting an unverified
fence, a start guard that lets a primary start when no peer answers as primary, no lease."""
from ansible_collections.pgha.cluster.plugins.module_utils import topology


def failover_steps(failed, total, lease, max_seconds, sync_required=0, sync_names=(), force=False, fence_device=False):
    facts = yield ("survey",)
    try:
        plan = topology.plan_failover(facts, failed_node=failed)
    except topology.Refusal as exc:
        return {"result": "refused", "reason": str(exc)}
    if plan["action"] == "none":
        return {"result": "none", "reason": plan["reason"]}
    yield ("fence_background", plan["fence"], False)   # the result was never waited for
    yield ("promote", plan["candidate"])
    yield ("repoint", plan["follow"], plan["candidate"])
    return {"result": "promoted", "candidate": plan["candidate"]}


def start_decision(local, peers, total):
    if local.get("standby_signal"):
        return {"start": True, "write_lock": False, "retry": False, "reason": "standby"}
    if local.get("fence_lock"):
        return {"start": False, "write_lock": False, "retry": False, "reason": "fenced"}
    others = [n for n, p in peers.items() if p.get("reachable") and p.get("in_recovery") is False]
    if others:
        return {"start": False, "write_lock": True, "retry": False, "reason": "another primary"}
    return {"start": True, "write_lock": False, "retry": False, "reason": "no peer answers as primary"}


def guard_step(state, role, replies, now, total, lease, paused=False, fenced=()):
    return state, "keep", "no guard"


class Keeper:
    """pgha 0.1.0's keeper (Keeper.step): a ping of the witness instead of a lease."""

    @staticmethod
    def keeper_step(facts, state, count, unused_strict=False):
        state = dict({"failures": 0}, **state)
        peer = facts.get("peer") or {}
        witness_answers = facts.get("lease") is not None
        if facts.get("role") == "standby":
            if peer.get("reachable") and peer.get("role") == "primary":
                return dict(state, failures=0), {"steps": [], "reason": "primary answers", "warn": False}
            state["failures"] += 1
            if state["failures"] < count or not witness_answers:
                return state, {"steps": [], "reason": "waiting", "warn": True}
            return dict(state, failures=0), {"steps": [("fence_peer",), ("promote",), ("async",)],
                                             "reason": "promoting", "warn": True}
        if facts.get("role") == "primary":
            if peer.get("reachable") and peer.get("streaming"):
                steps = [("sync",)] if facts.get("async") else []
                return dict(state, failures=0), {"steps": steps, "reason": "standby streams", "warn": False}
            state["failures"] += 1
            if state["failures"] >= count and witness_answers and not facts.get("async"):
                return state, {"steps": [("async",)], "reason": "standby gone", "warn": True}
        return state, {"steps": [], "reason": "nothing", "warn": False}

    @staticmethod
    def start_refusal(lease, name, timeline):
        return None
