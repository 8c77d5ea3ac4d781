#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_user
short_description: Ensure a PostgreSQL login role exists with a SCRAM password and attributes
version_added: 0.1.0
description:
  - Creates or updates one login role. The password is turned into a SCRAM-SHA-256
    verifier by the module, so the plaintext never appears in SQL or server logs, and a
    role whose stored verifier already matches is left alone.
  - The password is prepared with SASLprep (RFC 4013) as libpq and the server do, so
    non-ASCII passwords log in; the iteration count is the server's C(scram_iterations)
    (PostgreSQL 16 and later), 4096 before.
  - Only what pgha needs (replication, superuser, membership in predefined roles); use
    community.postgresql for general role management.
extends_documentation_fragment:
  - pgha.cluster.attributes
  - pgha.cluster.postgres
options:
  name:
    description: Role name.
    type: str
    required: true
  password:
    description: Plaintext password; stored as a SCRAM-SHA-256 verifier.
    type: str
    required: true
  superuser:
    description: SUPERUSER attribute.
    type: bool
    default: false
  replication:
    description: REPLICATION attribute.
    type: bool
    default: false
  member_of:
    description: Roles to grant to this role (for example C(pg_monitor)).
    type: list
    elements: str
    default: []
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Ensure the replication role exists
  become: true
  become_user: postgres
  pgha.cluster.pg_user:
    name: pgha_replicator
    password: "{{ pgha_replication_password }}"
    replication: true
'''

RETURN = r'''
executed_queries:
  description: Statements run (or that would run in check mode), with the verifier hidden.
  returned: always
  type: list
  elements: str
  sample: ["CREATE ROLE \"pgha_replicator\" LOGIN REPLICATION PASSWORD '********'"]
'''

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.ansible_glue import ensure_psycopg2
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    DRIVER_ERRORS, PgConnectError, connect, login_argument_spec, query, query_one, safe_message)
from ansible_collections.pgha.cluster.plugins.module_utils.scram import ITERATIONS, make_verifier, verifier_matches

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

ROLE_SQL = """
SELECT rolsuper, rolreplication, rolcanlogin, rolpassword,
       ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
             WHERE m.member = a.oid) AS member_of
FROM pg_authid a WHERE rolname = %s
"""


def attributes(params):
    return "LOGIN %sSUPERUSER %sREPLICATION" % ("" if params["superuser"] else "NO",
                                                "" if params["replication"] else "NO")


def plan(current, params):
    """Statements (with a %s for the verifier where a password is set) to reach the goal."""
    name = '"%s"' % params["name"]
    if current is None:
        steps = ["CREATE ROLE %s %s PASSWORD %%s" % (name, attributes(params))]
    else:
        steps = []
        if (current["rolsuper"], current["rolreplication"], current["rolcanlogin"]) != (
                params["superuser"], params["replication"], True):
            steps.append("ALTER ROLE %s %s" % (name, attributes(params)))
        if not verifier_matches(current["rolpassword"], params["password"]):
            steps.append("ALTER ROLE %s PASSWORD %%s" % name)
    have = set(current["member_of"]) if current else set()
    steps += ['GRANT "%s" TO %s' % (role, name) for role in params["member_of"] if role not in have]
    return steps


def role_diff(current, params, steps):
    """Attributes and memberships before and after; the password only as changed or not."""
    after = {"exists": True, "login": True, "superuser": params["superuser"], "replication": params["replication"],
             "member_of": sorted(set(params["member_of"]) | set(current["member_of"] if current else [])),
             "password": "changed" if any("PASSWORD" in step for step in steps) else "unchanged"}
    if current is None:
        return {"before": {"exists": False}, "after": after}
    before = {"exists": True, "login": current["rolcanlogin"], "superuser": current["rolsuper"],
              "replication": current["rolreplication"], "member_of": sorted(current["member_of"]),
              "password": "unchanged"}
    return {"before": before, "after": after}


def main():
    argument_spec = login_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        password=dict(type="str", required=True, no_log=True),
        superuser=dict(type="bool", default=False),
        replication=dict(type="bool", default=False),
        member_of=dict(type="list", elements="str", default=[]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    for ident in [params["name"]] + params["member_of"]:
        if not IDENTIFIER.match(ident):
            module.fail_json(msg="invalid role name %r: use letters, digits and _" % ident)
    ensure_psycopg2(module)
    try:
        conn = connect(params)
    except PgConnectError as exc:
        module.fail_json(msg=str(exc))
    try:
        current = query_one(conn, ROLE_SQL, (params["name"],))
        steps = plan(current, params)
        if steps and not module.check_mode:
            # PostgreSQL 16+ lets the server choose the iteration count; older ones use 4096.
            setting = query_one(conn, "SELECT current_setting('scram_iterations', true) AS iterations")
            verifier = make_verifier(params["password"], iterations=int((setting or {}).get("iterations") or ITERATIONS))
            for step in steps:
                query(conn, step, (verifier,) if "%s" in step else None)
    except DRIVER_ERRORS as exc:
        module.fail_json(msg="role %s: %s" % (params["name"], safe_message(exc, params)))
    finally:
        conn.close()
    shown = [s.replace("%s", "'********'") for s in steps]
    module.exit_json(changed=bool(steps), executed_queries=shown, diff=role_diff(current, params, steps))


if __name__ == "__main__":
    main()
