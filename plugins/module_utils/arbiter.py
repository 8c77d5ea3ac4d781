# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The keeper's arbiter: one lease row per cluster in a PostgreSQL database on a third host.

Every change is one statement that compares and sets, so two keepers can never both win:
the arbiter's own clock decides expiry (no clock of the nodes is compared with another).
The decisions are in module_utils/keeper.py; this is only the I/O.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.pgha.cluster.plugins.module_utils import postgres

SCHEMA = """CREATE TABLE IF NOT EXISTS pgha_lease (
    cluster text PRIMARY KEY,
    holder text NOT NULL,
    term bigint NOT NULL,
    timeline bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    synchronous boolean NOT NULL,
    renewed_at timestamptz NOT NULL DEFAULT now(),
    version bigint NOT NULL DEFAULT 0
)"""
# Arbiters created before the version column (every change counts it up: a row restored from
# a backup has a lower one than a keeper already read, whatever the arbiter's clock says).
MIGRATE = "ALTER TABLE pgha_lease ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0"

READ = """SELECT holder, term, timeline, synchronous, expires_at < now() AS expired,
       extract(epoch FROM now() - renewed_at)::float8 AS age, version
  FROM pgha_lease WHERE cluster = %(cluster)s"""

CREATE = """INSERT INTO pgha_lease (cluster, holder, term, timeline, expires_at, synchronous, version)
VALUES (%(cluster)s, %(name)s, 1, %(timeline)s, now() + make_interval(secs => %(seconds)s), %(synchronous)s, 1)
ON CONFLICT (cluster) DO NOTHING RETURNING term"""

RENEW = """UPDATE pgha_lease SET expires_at = now() + make_interval(secs => %(seconds)s), timeline = %(timeline)s,
       synchronous = %(synchronous)s, renewed_at = now(), version = version + 1
 WHERE cluster = %(cluster)s AND holder = %(name)s RETURNING term"""

# A standby takes over only from a lease that expired while it was synchronous; a primary on
# a newer timeline (after a switchover) only from the term it read.
CLAIM = """UPDATE pgha_lease SET holder = %(name)s, term = term + 1, timeline = %(timeline)s,
       expires_at = now() + make_interval(secs => %(seconds)s), synchronous = false, renewed_at = now(),
       version = version + 1
 WHERE cluster = %(cluster)s AND term = %(term)s
   AND (NOT %(standby_takeover)s OR (expires_at < now() AND synchronous)) RETURNING term"""


def params(conninfo_params, timeout):
    """Connection options for the arbiter with a statement timeout (a slow arbiter is a dead one)."""
    return dict(conninfo_params, connect_timeout=max(1, int(round(timeout))),
                options="-c statement_timeout=%d" % int(timeout * 1000))


def read_lease(conn, cluster, ensure_schema=False):
    """The lease row as keeper.keeper_step reads it ({"holder": None} when there is none).
    ensure_schema: create the table first (the keepers' role owns the arbiter's database)."""
    if ensure_schema:
        postgres.query(conn, SCHEMA)
        postgres.query(conn, MIGRATE)
    return postgres.query_one(conn, READ, {"cluster": cluster}) or {"holder": None}


def change(conn, statement, **values):
    """Run CREATE, RENEW or CLAIM; the new term when it took effect, else None."""
    row = postgres.query_one(conn, statement, values)
    return row["term"] if row else None


def kept_state(state_file):
    """What a restarted keeper keeps from its state file: "lease_seen", the lease row it read
    last (keeper.remembered; a row older than that comes from an arbiter restored from a
    backup, keeper.lease_behind), and "claimed_term", the term of a claim it made and has not
    finished as primary (keeper.keeper_step). Each only when present and well-formed."""
    try:
        with open(state_file) as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict):
        return {}
    kept = {}
    seen, term = saved.get("lease_seen"), saved.get("claimed_term")
    if isinstance(seen, dict) and _is_int(seen.get("version")):
        kept["lease_seen"] = seen
    if _is_int(term):
        kept["claimed_term"] = term
    return kept


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)
