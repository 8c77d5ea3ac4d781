# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Promotion steps shared by pg_promote, pg_switchover and the pgpool hook (plain Python)."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

from ansible_collections.pgha.cluster.plugins.module_utils import safety
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import query, query_one

PROMOTION_POLL = 0.01   # seconds between checks whether a promotion is done
# A primary's timeline right after its promotion (the control file has it only after the
# next checkpoint); the first 8 hex digits of its current WAL file's name.
CURRENT_TIMELINE = "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int"


def promote(conn, timeout, checkpoint=False):
    """Promote conn's server and wait until it runs as a primary; CHECKPOINT after it when
    asked. Returns seconds taken."""
    started = time.monotonic()
    # pg_promote(true) checks every 100 ms whether it is done: polling here answers sooner.
    if not query_one(conn, "SELECT pg_promote(false) AS signalled")["signalled"]:
        raise RuntimeError("pg_promote could not signal the postmaster")
    while query_one(conn, "SELECT pg_is_in_recovery() AS standby")["standby"]:
        if time.monotonic() - started > timeout:
            raise RuntimeError("pg_promote did not finish within %d s" % timeout)
        time.sleep(PROMOTION_POLL)
    if checkpoint:
        checkpoint_now(conn)
    return round(time.monotonic() - started, 3)


def checkpoint_now(conn):
    # pg_rewind on the other nodes reads the new timeline from the control file.
    query_one(conn, "CHECKPOINT")


def record_fenced(conn, path, fenced):
    """On a primary: add the old primaries proven fenced to its record at `path` (its
    timeline, then one name per line; read by its node guard: safety.fenced_peers). COPY
    writes as the server's user, so no ssh is needed. Returns the timeline."""
    row = query_one(conn, "SELECT " + CURRENT_TIMELINE + " AS timeline, pg_read_file(%s, 0, 4096, true) AS record",
                    (path,))
    names = safety.fenced_record(row["record"], row["timeline"], fenced)
    query(conn, "COPY (SELECT unnest(ARRAY[%s::text] || %s::text[])) TO %s", (row["timeline"], names, path))
    return row["timeline"]


def wait_for_wal(conn, lsn, timeout):
    """Wait until conn's server received WAL beyond lsn (a primary has all of its WAL)."""
    deadline = time.time() + timeout
    while True:
        row = query_one(conn, "SELECT NOT pg_is_in_recovery() OR COALESCE(pg_last_wal_receive_lsn() > %s::pg_lsn, "
                              "false) AS received, pg_last_wal_receive_lsn()::text AS at", (lsn,))
        if row["received"]:
            return
        if time.time() >= deadline:
            raise RuntimeError("not promoting: WAL beyond %s did not arrive within %d s (received up to %s)"
                               % (lsn, timeout, row["at"]))
        time.sleep(0.05)


def controldata_field(text, name):
    """One field of pg_controldata's output (run with LC_ALL=C), or None."""
    match = re.search(r"^%s:\s+(.*?)\s*$" % re.escape(name), text, re.MULTILINE)
    return match.group(1) if match else None


HISTORY_FILE = re.compile(r"^([0-9A-F]{8})\.history$")


def wal_names(datadir):
    """The file names in a data directory's pg_wal ([] when it cannot be read)."""
    try:
        return os.listdir(os.path.join(datadir, "pg_wal"))
    except OSError:
        return []


def stopped_timeline(controldata, names):
    """The timeline a server that does not run was last on, from pg_controldata's output and
    the names in its pg_wal, or None. The control file's checkpoint timeline lags a promotion
    until the first checkpoint after it, while the promotion wrote the new timeline's history
    file at once (a standby has the history of each timeline it followed, too)."""
    found = [int(value) for value in (controldata_field(controldata, "Latest checkpoint's TimeLineID"),
                                      controldata_field(controldata, "Min recovery ending loc's timeline"))
             if value and value.isdigit()]
    found += [int(match.group(1), 16) for match in map(HISTORY_FILE.match, names) if match]
    return max(found) if found else None
