# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The decision core: cluster state and failover plans from every node's facts.

Pure functions, no I/O. `nodes` maps a node name to the facts returned by
pg_facts.survey_node (reachable, in_recovery, timeline, received_lsn_bytes,
system_identifier, replication, ...).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re


class Refusal(Exception):
    """An unsafe request: nothing may be changed; the message says why."""


def reachable(nodes):
    return dict((n, f) for n, f in nodes.items() if f.get("reachable"))


def primaries(nodes):
    return sorted(n for n, f in reachable(nodes).items() if f.get("in_recovery") is False)


def standbys(nodes):
    return sorted(n for n, f in reachable(nodes).items() if f.get("in_recovery") is True)


def sync_standby_names(nodes):
    """Application names the (last known) primaries report as sync or quorum standbys."""
    names = set()
    for facts in reachable(nodes).values():
        for client in facts.get("replication") or []:
            if client.get("sync_state") in ("sync", "quorum"):
                names.add(client.get("application_name"))
    return names


def cluster_state(nodes):
    """'healthy' (one primary), 'no_primary' or 'split_brain', with the names, and each
    primary's synchronous replication (sync_status)."""
    found = primaries(nodes)
    state = {0: "no_primary", 1: "healthy"}.get(len(found), "split_brain")
    return {"state": state, "primaries": found, "standbys": standbys(nodes),
            "unreachable": sorted(n for n, f in nodes.items() if not f.get("reachable")),
            "sync": dict((p, sync_status(nodes[p])) for p in found)}


def sync_status(facts):
    """A primary's synchronous replication: {"state", "acking"}. state: 'asynchronous' (the
    guard or the keeper emptied synchronous_standby_names), 'writes_wait' (standbys are named
    and none acknowledges) or 'synchronous'; acking: the standbys that acknowledge commits."""
    acking = [r.get("application_name") for r in facts.get("replication") or []
              if r.get("sync_state") in ("sync", "quorum")]
    if facts.get("synchronous_standby_names") == "":
        state = "asynchronous"
    elif not acking:
        state = "writes_wait"
    else:
        state = "synchronous"
    return {"state": state, "acking": acking}


def wal_position(facts):
    return (facts.get("timeline") or 0, facts.get("received_lsn_bytes") or 0)


def rank_candidates(nodes, sync_names=()):
    """Reachable standbys, best first: highest (timeline, received LSN), sync preferred on ties."""
    def key(name):
        return wal_position(nodes[name]) + (name in sync_names,)
    return sorted(standbys(nodes), key=key, reverse=True)


def check_system_identifiers(nodes):
    ids = dict((n, f.get("system_identifier")) for n, f in reachable(nodes).items())
    if len(set(ids.values())) > 1:
        detail = ", ".join("%s=%s" % item for item in sorted(ids.items()))
        raise Refusal("nodes disagree on system identifier (%s): a foreign data directory is present" % detail)


def followed_primary(nodes):
    """The failed primary an operator did not name: the one node every reachable standby is
    configured to follow ("follows", safety.annotate), when it does not answer; else None.
    (The first node to fence may be an unreachable standby.)"""
    followed = set(f.get("follows") for f in nodes.values() if f.get("reachable") and f.get("in_recovery"))
    if len(followed) != 1 or None in followed:
        return None
    name = followed.pop()
    return None if nodes.get(name, {}).get("reachable") else name


def plan_failover(nodes, failed_node=None, candidate=None, force=False, sync_names=None):
    """The steps of a failover, or Refusal with the reason.

    Returns {"action": "promote", "candidate", "fence", "follow"} or
    {"action": "none", "reason"} when a failover already happened (idempotent rerun).
    """
    if failed_node is not None and failed_node not in nodes:
        raise Refusal("unknown failed_node %r: known nodes are %s" % (failed_node, ", ".join(sorted(nodes))))
    if candidate is not None and candidate not in nodes:
        raise Refusal("unknown candidate %r: known nodes are %s" % (candidate, ", ".join(sorted(nodes))))
    check_system_identifiers(nodes)
    state = cluster_state(nodes)
    live_primaries = [p for p in state["primaries"] if p != failed_node or not force]
    if state["state"] == "split_brain":
        raise Refusal("two primaries are running (%s): resolve by hand, then rebuild the wrong one"
                      % ", ".join(state["primaries"]))
    if live_primaries and failed_node not in live_primaries:
        return {"action": "none", "primary": live_primaries[0],
                "reason": "%s is a reachable primary: nothing to fail over" % live_primaries[0]}
    if live_primaries and not force:
        raise Refusal("%s is still a reachable, healthy primary: refusing to fail over (use force=true to "
                      "fence and replace it)" % live_primaries[0])
    ranked = rank_candidates(nodes, sync_names if sync_names is not None else sync_standby_names(nodes))
    ranked = [n for n in ranked if n != failed_node]
    if not ranked:
        raise Refusal("no reachable standby to promote")
    best = ranked[0]
    if candidate is not None:
        if candidate not in ranked:
            raise Refusal("candidate %s is not a reachable standby" % candidate)
        if wal_position(nodes[candidate]) < wal_position(nodes[best]) and not force:
            raise Refusal("candidate %s is behind %s (timeline, LSN) %s < %s: promoting it would lose "
                          "transactions" % (candidate, best, wal_position(nodes[candidate]),
                                            wal_position(nodes[best])))
        best = candidate
    # Every node that is or may be a primary gets fenced: we cannot tell what an
    # unreachable node is doing.
    fence = sorted(set(live_primaries) | set(state["unreachable"]) | set([failed_node] if failed_node else []))
    return {"action": "promote", "candidate": best, "fence": fence,
            "follow": sorted(n for n in state["standbys"] if n != best)}


def rebuild_need(target, primary, primary_address):
    """Whether `target` (its facts) must be rebuilt to become a streaming standby of
    `primary` (facts, reached at primary_address): {needed, reason, refusal}. A healthy
    standby of the current primary is left alone; refusal: see rebuild_refusal."""
    receiver = target.get("wal_receiver") or {}
    if not target.get("reachable"):
        reason, needed = "it does not answer (%s)" % (target.get("reason") or "stopped"), True
    elif target.get("in_recovery") is not True:
        reason, needed = "it runs as a primary", True
    elif receiver.get("status") != "streaming":
        reason, needed = "its WAL receiver is %s" % (receiver.get("status") or "not running"), True
    elif target.get("primary_conninfo_host") != primary_address:
        reason, needed = "it streams from %s, not from the primary" % target.get("primary_conninfo_host"), True
    elif (target.get("timeline") or 0) != (primary.get("timeline") or 0):
        reason, needed = "it is on timeline %s, the primary on %s" % (target.get("timeline"), primary.get("timeline")), True
    else:
        reason, needed = "it already streams from the primary on timeline %s" % primary.get("timeline"), False
    return {"needed": needed, "reason": reason, "refusal": rebuild_refusal(target, primary)}


ASIDE_STAMP = re.compile(r"^(\d{8}T\d{6})(-wal)?$")


def aside_to_prune(paths, prefix, keep, keep_days, now):
    """Copies kept aside by rebuilds (prefix + STAMP for an old data directory, prefix +
    STAMP-wal for WAL kept before pg_rewind) to remove: those of a rebuild beyond the newest
    `keep` rebuilds AND stamped more than keep_days before `now` (UTC, as datetime). The age
    is the stamp's, never the files' (mv and cp -a keep an old mtime); a name without a
    stamp is never removed."""
    if now.tzinfo is not None:
        now = now.replace(tzinfo=None) - now.utcoffset()
    stamps = {}
    for path in paths:
        match = ASIDE_STAMP.match(path[len(prefix):]) if path.startswith(prefix) else None
        if match:
            stamps.setdefault(match.group(1), []).append(path)
    newest = sorted(stamps, reverse=True)[:keep]
    cutoff = now - datetime.timedelta(days=keep_days)
    return sorted(path for stamp, group in stamps.items() if stamp not in newest
                  and datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%S") < cutoff for path in group)


def target_timeline(target):
    """The timeline a rebuild target's data is on: read from the running server, or from
    pg_controldata when it is stopped (pg_node_info's stopped_timeline); None when unknown."""
    return target.get("timeline") if target.get("reachable") else target.get("stopped_timeline")


def rebuild_refusal(target, primary):
    """Why rebuild.yml must not make `target` a copy of `primary` (facts), or None. A target
    on a newer timeline than the primary was promoted after it: it may hold acknowledged
    commits the primary lacks (the running "primary" may be a stale old one)."""
    mine, theirs = target_timeline(target), primary.get("timeline")
    if mine is None or theirs is None or mine <= theirs:
        return None
    return ("it is on timeline %s, newer than the primary's timeline %s, so it may hold acknowledged commits the "
            "primary lacks (is the primary an old one that came back?). Check both servers; pass -e force=true to "
            "move its data aside and rebuild it anyway" % (mine, theirs))


def deploy_primary(nodes, intended):
    """site.yml's primary, read from the servers: {"primary", "running", "with_data", "fenced",
    "refusal"}. nodes: {name: {"has_data": bool, "facts": pg_node_info's result or None}};
    intended: the inventory's pgha_role=primary host, which decides only for a cluster
    without data. refusal: why site.yml may not deploy (None when it may)."""
    running = sorted(n for n, node in nodes.items() if (node.get("facts") or {}).get("role") == "primary")
    with_data = sorted(n for n, node in nodes.items() if node.get("has_data"))
    fenced = sorted(n for n, node in nodes.items() if (node.get("facts") or {}).get("fence_lock_present"))
    primary = running[0] if len(running) == 1 else (intended if not with_data else "")
    refusal = None
    if len(running) > 1:
        refusal = ("two primaries are running (%s): resolve the split brain (fence one, then rebuild it) before "
                   "running site.yml" % ", ".join(running))
    elif not primary:
        refusal = ("data directories exist on %s but no primary is running: start the right node or run "
                   "pgha.cluster.failover first; site.yml will not pick one" % ", ".join(with_data))
    elif fenced:
        refusal = ("%s %s fenced (old primary after a failover): make %s with pgha.cluster.rebuild -e target=%s "
                   "before running site.yml again" % (", ".join(fenced), "is" if len(fenced) == 1 else "are",
                                                      "it a standby" if len(fenced) == 1 else "them standbys",
                                                      fenced[0]))
    return {"primary": primary, "running": running, "with_data": with_data, "fenced": fenced, "refusal": refusal}


def service_plan(nodes):
    """start.yml's and stop.yml's reading of the backends: {"running", "would_be", "fenced",
    "primary", "refusal"}. nodes: {name: {"role" (from pg_node_info, None when it does not
    answer), "standby_signal", "fence_lock"}}. primary: the running primary, else the one data
    directory that would start as a primary (no standby.signal, no fence lock). refusal: two
    nodes are or would start as primary."""
    running = sorted(n for n, node in nodes.items() if node.get("role") == "primary")
    would_be = sorted(n for n, node in nodes.items() if not node.get("standby_signal") and not node.get("fence_lock"))
    fenced = sorted(n for n, node in nodes.items() if node.get("fence_lock") and not node.get("standby_signal"))
    refusal = None
    if len(running) > 1 or (not running and len(would_be) > 1):
        both = running if len(running) > 1 else would_be
        refusal = ("refused, nothing changed: %s %s as primary. Keep the one with the most WAL and rebuild the "
                   "other with pgha.cluster.rebuild before starting or stopping the cluster"
                   % (" and ".join(both), "run" if len(running) > 1 else "would both start"))
    return {"running": running, "would_be": would_be, "fenced": fenced,
            "primary": (running + would_be + [""])[0], "refusal": refusal}


def rebuild_source(roles, target):
    """rebuild.yml's primary: {"primary", "refusal"}; roles: {name: "primary" | "standby" | other}."""
    primaries_found = sorted(n for n, role in roles.items() if role == "primary")
    if target in primaries_found:
        return {"primary": target, "refusal": "refusing to rebuild %s: it is the current primary" % target}
    if len(primaries_found) != 1:
        return {"primary": "", "refusal": "need exactly one running primary, found: %s" % (
            ", ".join(primaries_found) or "none")}
    return {"primary": primaries_found[0], "refusal": None}
