#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_follow
short_description: Make a PostgreSQL standby stream from a primary (slot, repoint, wait)
version_added: 0.1.0
description:
  - Ensures a physical replication slot for this standby on the primary, points the standby
    at the primary (C(primary_conninfo) and C(primary_slot_name) by C(ALTER SYSTEM), then a
    reload) and waits until its WAL receiver streams from the primary.
  - The same code as pgpool's hook uses (module_utils C(replication)).
  - Each step can be left out, so the module also only ensures the slot (before a rebuild
    stops the node) or only waits for streaming (after a restart).
  - Refuses to repoint a server that is not in recovery (a primary).
  - Connects to the standby with the login options and to the primary at O(primary_host).
extends_documentation_fragment:
  - pgha.cluster.attributes
  - pgha.cluster.postgres
options:
  primary_host:
    description: Address of the primary to follow.
    type: str
    required: true
  primary_port:
    description: Port of the primary; defaults to O(login_port).
    type: int
  primary_user:
    description:
      - Role to connect to the primary as, to create the slot (a superuser or a role with
        REPLICATION); its password comes from C(~/.pgpass) unless O(primary_password) is set.
    type: str
    default: postgres
  primary_password:
    description: Password of O(primary_user); never shown in output.
    type: str
    default: ''
  replication_user:
    description: Role the standby streams as (in C(primary_conninfo)).
    type: str
    required: true
  slot_name:
    description: Replication slot and C(application_name) of this standby (its node name).
    type: str
    required: true
  cascade:
    description:
      - Follow a server that is itself a standby (a switchover points the other standbys at
        its target before promoting it). By default a server in recovery is refused as the
        one to follow, because the roles changed since they were read.
    type: bool
    default: false
  create_slot:
    description: Ensure the slot exists on the primary.
    type: bool
    default: true
  repoint:
    description: Point the standby at the primary (the server must be running, in recovery).
    type: bool
    default: true
  conninfo_options:
    description:
      - More libpq keywords for the standby's C(primary_conninfo), for example
        C(sslmode=verify-full sslrootcert=/etc/pgha/tls/ca.crt). A change reconnects the WAL receiver.
    type: str
    default: ""
  wait_timeout:
    description:
      - Seconds to wait until the standby streams from the primary; fails when it does not.
        C(0) does not wait. Never waits in check mode.
    type: int
    default: 30
seealso:
  - module: pgha.cluster.pg_node_info
  - module: pgha.cluster.pg_promote
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Follow the new primary and wait until streaming
  become: true
  become_user: postgres
  pgha.cluster.pg_follow:
    login_port: 5432
    primary_host: 10.89.0.12
    primary_user: pgha_admin
    replication_user: replicator
    slot_name: pg2

- name: Only make sure the primary keeps WAL for this node (before a rebuild stops it)
  become: true
  become_user: postgres
  pgha.cluster.pg_follow:
    primary_host: 10.89.0.12
    primary_user: pgha_admin
    replication_user: replicator
    slot_name: pg1
    repoint: false
    wait_timeout: 0
'''

RETURN = r'''
slot_created:
  description: Whether the slot was (in check mode, would be) created on the primary.
  returned: always
  type: bool
  sample: false
repointed:
  description: Whether primary_conninfo or primary_slot_name was (would be) changed.
  returned: always
  type: bool
  sample: true
streaming:
  description: Whether the standby streams from the primary at the end (not read when nothing was waited for).
  returned: always
  type: bool
  sample: true
diff:
  description: primary_conninfo and primary_slot_name before and after.
  returned: when O(repoint=true)
  type: dict
  sample: {"before": {"primary_conninfo": "host=10.0.0.1 ..."}, "after": {"primary_conninfo": "host=10.0.0.2 ..."}}
'''

from contextlib import closing

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils import replication
from ansible_collections.pgha.cluster.plugins.module_utils.ansible_glue import ensure_psycopg2
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    DRIVER_ERRORS, PgConnectError, connect, login_argument_spec, safe_message)


def primary_params(params):
    return dict(login_host=params["primary_host"], login_port=params["primary_port"] or params["login_port"],
                login_user=params["primary_user"], login_password=params["primary_password"], login_db="postgres",
                ssl_mode=params["ssl_mode"], ca_cert=params["ca_cert"], connect_timeout=params["connect_timeout"])


def follow(params, check_mode):
    result = dict(slot_created=False, repointed=False, streaming=False)
    if params["create_slot"]:
        with closing(connect(primary_params(params))) as conn:
            result["slot_created"] = replication.ensure_slot(conn, params["slot_name"], check_mode, params["cascade"])
    if not (params["repoint"] or params["wait_timeout"]):
        return result
    with closing(connect(params)) as conn:
        if params["repoint"]:
            conninfo = replication.primary_conninfo(params["primary_host"], params["primary_port"] or params["login_port"],
                                                    params["replication_user"], params["slot_name"],
                                                    params["conninfo_options"])
            result["repointed"], before = replication.repoint(conn, conninfo, params["slot_name"], check_mode)
            result["diff"] = {"before": before, "after": {"primary_conninfo": conninfo, "primary_slot_name": params["slot_name"]}}
        if check_mode or not params["wait_timeout"]:
            result["streaming"] = replication.streams_from(conn, params["primary_host"])
        else:
            result["streaming"] = replication.wait_streaming(conn, params["primary_host"], params["wait_timeout"])
            if not result["streaming"]:
                result["msg"] = "the standby does not stream from %s after %d s (its WAL receiver: %s)" % (
                    params["primary_host"], params["wait_timeout"], replication.receiver(conn) or "not running")
    return result


def main():
    argument_spec = login_argument_spec()
    argument_spec.update(
        primary_host=dict(type="str", required=True),
        primary_port=dict(type="int"),
        primary_user=dict(type="str", default="postgres"),
        primary_password=dict(type="str", default="", no_log=True),
        replication_user=dict(type="str", required=True),
        slot_name=dict(type="str", required=True),
        cascade=dict(type="bool", default=False),
        create_slot=dict(type="bool", default=True),
        repoint=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=30),
        conninfo_options=dict(type="str", default=""),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    params = module.params
    try:
        result = follow(params, module.check_mode)
    except PgConnectError as exc:
        module.fail_json(msg=str(exc))
    except DRIVER_ERRORS as exc:
        module.fail_json(msg="following %s failed: %s" % (params["primary_host"], safe_message(exc, params)))
    except RuntimeError as exc:
        module.fail_json(msg=str(exc))
    changed = result["slot_created"] or result["repointed"]
    if "msg" in result:
        module.fail_json(changed=changed, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
