# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Replication plumbing, once for every path (pg_follow module, pgpool's hook): a slot on
the primary, a standby pointed at it, the wait until it streams.

Plain Python; every function takes an open connection from module_utils.postgres.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.pgha.cluster.plugins.module_utils import postgres


def primary_conninfo(address, port, user, application_name, options=""):
    """The primary_conninfo of a standby of the primary at address:port; options: more
    libpq keywords (with TLS: sslmode=verify-full sslrootcert=...)."""
    return " ".join(["host=%s port=%s user=%s application_name=%s" % (address, port, user, application_name)]
                    + options.split())


def ensure_slot(conn, slot, check_mode=False, cascade=False):
    """Make sure the upstream keeps WAL for this standby; True when the slot was (or would be)
    created. Unless cascading on purpose (a switchover points the standbys at its target before
    promoting it), refuses an upstream in recovery: the roles changed since they were read."""
    if not cascade and postgres.query_one(conn, "SELECT pg_is_in_recovery() AS in_recovery")["in_recovery"]:
        raise RuntimeError("refusing: the server to follow is not a primary (any more); read the roles again")
    found = postgres.query_one(conn, "SELECT active, restart_lsn IS NULL OR wal_status = 'lost' AS useless "
                                     "FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    if found and (found["active"] or not found["useless"]):
        return False
    if not check_mode:
        # A slot that reserves nothing (never used, or invalidated past max_slot_wal_keep_size,
        # which a standby can never stream from again) is replaced; nobody streams from it.
        postgres.query(conn, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                             "WHERE slot_name = %s AND NOT active", (slot,))
        # Reserved at once: the WAL from now on stays until the standby streams.
        postgres.query(conn, "SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
    return True


def upstream(conn):
    """What the standby is told to follow (primary_conninfo, primary_slot_name)."""
    row = postgres.query_one(conn, "SELECT current_setting('primary_conninfo') AS primary_conninfo, "
                                   "current_setting('primary_slot_name') AS primary_slot_name, "
                                   "pg_is_in_recovery() AS in_recovery")
    return row


def repoint(conn, conninfo, slot, check_mode=False):
    """Point a standby at a primary; (changed, before). ALTER SYSTEM writes postgresql.auto.conf,
    which wins over every included file; a reload applies it (PostgreSQL 13+)."""
    before = upstream(conn)
    if not before["in_recovery"]:
        raise RuntimeError("refusing to repoint: this server is a primary, not a standby")
    changed = (before["primary_conninfo"], before["primary_slot_name"]) != (conninfo, slot)
    if changed and not check_mode:
        postgres.query(conn, "ALTER SYSTEM SET primary_conninfo = %s", (conninfo,))
        postgres.query(conn, "ALTER SYSTEM SET primary_slot_name = %s", (slot,))
        postgres.query(conn, "SELECT pg_reload_conf()")
    return changed, {"primary_conninfo": before["primary_conninfo"], "primary_slot_name": before["primary_slot_name"]}


def receiver(conn):
    """The WAL receiver's status and sender host ({} when none runs)."""
    return postgres.query_one(conn, "SELECT status, sender_host FROM pg_stat_wal_receiver") or {}


def streams_from(conn, address):
    row = receiver(conn)
    return row.get("status") == "streaming" and row.get("sender_host") == address


def wait_streaming(conn, address, timeout, interval=0.2, clock=time.time, sleep=time.sleep):
    """True once the standby streams from address, False when timeout seconds pass first."""
    deadline = clock() + timeout
    while not streams_from(conn, address):
        if clock() >= deadline:
            return False
        sleep(interval)
    return True
