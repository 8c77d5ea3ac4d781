# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read one PostgreSQL node's replication facts (plain Python, no Ansible)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket

from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    DRIVER_ERRORS, PgConnectError, connect, query, query_one, safe_message)

DEFAULT_FENCE_LOCK = "/var/lib/pgha/fenced"

# Timeline of a primary: the WAL file being written names it (pg_control_checkpoint
# still shows the old one until the first checkpoint after promotion). A standby whose
# WAL receiver is down shows a stale checkpoint timeline; the newest timeline history
# file it received names the timeline it follows.
NODE_SQL = """
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('server_version') AS server_version,
       current_setting('server_version_num')::int AS server_version_num,
       current_setting('data_directory') AS data_directory,
       current_setting('synchronous_standby_names') AS synchronous_standby_names,
       current_setting('synchronous_commit') AS synchronous_commit,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       (SELECT min_recovery_end_timeline FROM pg_control_recovery()) AS min_recovery_end_timeline,
       (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir()
         WHERE name ~ '^[0-9A-F]{8}[.]history$') AS history_timeline,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS wal_timeline,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       pg_last_wal_receive_lsn()::text AS received_lsn,
       pg_last_wal_replay_lsn()::text AS replayed_lsn,
       current_setting('primary_conninfo') AS primary_conninfo
"""

RECEIVER_SQL = """
SELECT status, sender_host, sender_port, slot_name, received_tli,
       flushed_lsn::text AS flushed_lsn, conninfo,
       EXTRACT(epoch FROM clock_timestamp() - last_msg_receipt_time)::float8 AS last_msg_age
FROM pg_stat_wal_receiver
"""

REPLICATION_SQL = """
SELECT application_name, client_addr::text AS client_addr, state, sync_state,
       sync_priority, sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn,
       flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint END AS lag_bytes
FROM pg_stat_replication ORDER BY application_name
"""

SLOTS_SQL = """
SELECT slot_name, slot_type, active, restart_lsn::text AS restart_lsn, wal_status
FROM pg_replication_slots ORDER BY slot_name
"""


def lsn_to_int(lsn):
    """'16/B374D848' -> byte position as int; None stays None."""
    if not lsn:
        return None
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def conninfo_host(conninfo):
    """host= of a conninfo string ('' or None: none)."""
    for item in (conninfo or "").split():
        if item.startswith("host="):
            return item[len("host="):]
    return None


def node_timeline(row, receiver):
    if not row["in_recovery"]:
        return row["wal_timeline"]
    candidates = [row["checkpoint_timeline"], row["min_recovery_end_timeline"], row.get("history_timeline")]
    if receiver and receiver.get("received_tli"):
        candidates.append(receiver["received_tli"])
    return max(t for t in candidates if t is not None)


def read_facts(conn):
    """Facts of the node behind an open connection."""
    row = query_one(conn, NODE_SQL)
    receiver = query_one(conn, RECEIVER_SQL)
    if receiver and receiver.get("conninfo"):
        # The conninfo PostgreSQL shows is already obfuscated; keep only safe keys.
        receiver["conninfo"] = " ".join(
            kv for kv in receiver["conninfo"].split() if not kv.startswith("password="))
    in_recovery = row["in_recovery"]
    # A primary has no receive position; its WAL end is the comparison point.
    received_lsn = row["received_lsn"] if in_recovery else row["current_lsn"]
    facts = {
        "reachable": True,
        "in_recovery": in_recovery,
        "role": "standby" if in_recovery else "primary",
        "server_version": row["server_version"],
        "server_version_num": row["server_version_num"],
        "system_identifier": row["system_identifier"],
        "timeline": node_timeline(row, receiver),
        "current_lsn": row["current_lsn"],
        "current_lsn_bytes": lsn_to_int(row["current_lsn"]),
        "received_lsn": received_lsn,
        "received_lsn_bytes": lsn_to_int(received_lsn),
        "replayed_lsn": row["replayed_lsn"],
        "replayed_lsn_bytes": lsn_to_int(row["replayed_lsn"]),
        "data_directory": row["data_directory"],
        "synchronous_standby_names": row["synchronous_standby_names"],
        "synchronous_commit": row["synchronous_commit"],
        "wal_receiver": receiver,
        # The host this server is configured to stream from (the start guard's "follows").
        "primary_conninfo_host": conninfo_host(row["primary_conninfo"]) if in_recovery else None,
        "replication": query(conn, REPLICATION_SQL),
        "replication_slots": query(conn, SLOTS_SQL),
    }
    # pg_last_wal_receive_lsn() restarts at a segment boundary when the WAL receiver
    # reconnects: never rank a standby below what it flushed or replayed.
    if in_recovery:
        flushed = (receiver or {}).get("flushed_lsn")
        for lsn in (flushed, row["replayed_lsn"]):
            if lsn and lsn_to_int(lsn) > (facts["received_lsn_bytes"] or 0):
                facts["received_lsn"], facts["received_lsn_bytes"] = lsn, lsn_to_int(lsn)
    return facts


def unreachable_facts(reason, host_answers=None):
    """host_answers: True when the node's host refused the connection (it runs, PostgreSQL
    does not listen), False when nothing answered in time, None when not known."""
    return {"reachable": False, "reason": reason, "in_recovery": None, "role": "unknown",
            "host_answers": host_answers}


def tcp_probe(host, port, timeout):
    """(why a TCP connection to host:port fails within timeout seconds or None when it
    opens, whether the host answered: it refused the port or accepted it).

    libpq waits at least 2 s for a host that does not answer; this answers sooner.
    """
    try:
        socket.create_connection((host, int(port)), timeout).close()
    except ConnectionRefusedError as exc:
        return "no TCP connection to %s:%s (%s)" % (host, port, exc), True
    except (OSError, ValueError) as exc:
        return "no TCP connection to %s:%s within %s s (%s)" % (host, port, timeout, exc), False
    return None, True


def survey_node(params, fence_lock_file=DEFAULT_FENCE_LOCK, local=True, probe_timeout=None):
    """Facts of one node; an unreachable node yields reachable=False and the reason.

    probe_timeout: first try a plain TCP connection for that many seconds (hosts only).
    """
    facts = read_node(params, probe_timeout)
    facts["fence_lock_present"] = os.path.exists(fence_lock_file) if local else None
    return facts


def read_node(params, probe_timeout):
    host, host_answers = params.get("login_host"), None
    if probe_timeout and host and not host.startswith("/"):
        reason, host_answers = tcp_probe(host, params.get("login_port") or 5432, probe_timeout)
        if reason:
            return unreachable_facts(reason, host_answers)
    try:
        conn = connect(params)
    except PgConnectError as exc:
        return unreachable_facts(str(exc), host_answers)
    try:
        return read_facts(conn)
    except DRIVER_ERRORS as exc:
        return unreachable_facts("query failed: %s" % safe_message(exc, params), True)
    finally:
        conn.close()
