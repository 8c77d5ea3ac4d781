"""The decisions as they were before the safety work (pgha 0.1.0), kept only so the
simulator proves it finds their split brains: promotion right after starting an unverified
fence, a start guard that lets a primary start when no peer answers as primary, no lease."""
from ansible_collections.pgha.cluster.plugins.module_utils import topology


def failover_steps(failed, total, lease, max_seconds, sync_required=0, sync_names=(), force=False):
    facts = yield ("survey",)
    try:
        plan = topology.plan_failover(facts, failed_node=failed)
    except topology.Refusal as exc:
        return {"result": "refused", "reason": str(exc)}
    if plan["action"] == "none":
        return {"result": "none", "reason": plan["reason"]}
    yield ("fence", plan["fence"])          # the result was never waited for
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


def guard_step(state, role, replies, now, total, lease, paused=False):
    return state, "keep", "no guard"
