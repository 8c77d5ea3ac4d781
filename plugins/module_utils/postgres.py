# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL connections for pgha modules, the pgpool hook and the keeper.

Plain Python (no Ansible imports) so that the hook programs on the nodes use the
same code as the modules.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import psycopg2
    import psycopg2.extras
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the host
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

SSL_MODES = ["allow", "disable", "prefer", "require", "verify-ca", "verify-full"]


def login_argument_spec():
    """Connection options shared by every module (community.postgresql names)."""
    return dict(
        login_user=dict(type="str", default="postgres", aliases=["login"]),
        login_password=dict(type="str", default="", no_log=True),
        login_host=dict(type="str", default="", aliases=["host"]),
        login_unix_socket=dict(type="str", default="", aliases=["unix_socket"]),
        login_port=dict(type="int", default=5432, aliases=["port"]),
        login_db=dict(type="str", default="postgres", aliases=["db"]),
        ssl_mode=dict(type="str", default="prefer", choices=SSL_MODES),
        ca_cert=dict(type="str", default="", aliases=["ssl_rootcert"]),
        connect_timeout=dict(type="int", default=5),
    )


DRIVER_ERRORS = (psycopg2.Error,) if HAS_PSYCOPG2 else ()


class PgConnectError(Exception):
    """Connection failure with a message safe to show (no secrets)."""


def conn_params(params):
    """Map our option names to libpq keywords; empty values are left out."""
    mapping = {
        "login_host": "host", "login_port": "port", "login_user": "user",
        "login_password": "password", "login_db": "dbname", "ssl_mode": "sslmode",
        "connect_timeout": "connect_timeout", "options": "options", "ca_cert": "sslrootcert",
        "channel_binding": "channel_binding",
    }
    kwargs = {}
    for option, keyword in mapping.items():
        value = params.get(option)
        if value not in (None, ""):
            kwargs[keyword] = value
    if params.get("login_unix_socket") and not params.get("login_host"):
        kwargs["host"] = params["login_unix_socket"]
    kwargs.setdefault("application_name", "pgha")
    return kwargs


def verified(ca_cert):
    """Connection options that verify the server against the cluster CA and bind the SCRAM
    login to that TLS session (TLS on), else none. Like pgha_tls_conninfo in roles/pgha/vars."""
    return {"ssl_mode": "verify-full", "ca_cert": ca_cert, "channel_binding": "require"} if ca_cert else {}


def safe_message(exc, params):
    """The driver's message without the password, in one line."""
    text = " ".join(str(exc).split())
    password = params.get("login_password")
    if password:
        text = text.replace(password, "********")
    return text


def connect(params, autocommit=True):
    """Open a connection; raise PgConnectError with a safe message on failure."""
    if not HAS_PSYCOPG2:
        raise PgConnectError("psycopg2 is not installed: %s" % PSYCOPG2_IMPORT_ERROR)
    kwargs = conn_params(params)
    try:
        conn = psycopg2.connect(**kwargs)
    except psycopg2.Error as exc:
        target = "%s:%s" % (kwargs.get("host", "local socket"), kwargs.get("port", 5432))
        raise PgConnectError("cannot connect to %s as %s: %s" % (
            target, kwargs.get("user", "?"), safe_message(exc, params)))
    conn.autocommit = autocommit
    return conn


def query(conn, sql, args=None):
    """Run one statement and return its rows as dicts (empty list when none)."""
    with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql, args)
        if cur.description is None:
            return []
        return [dict(row) for row in cur.fetchall()]


def query_one(conn, sql, args=None):
    rows = query(conn, sql, args)
    return rows[0] if rows else None
