#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_promote
short_description: Promote a PostgreSQL standby to primary
version_added: 0.1.0
description:
  - Runs C(pg_promote(wait => true)) with a timeout, then C(CHECKPOINT) so that pg_rewind
    on other nodes sees the new timeline in the control file.
  - A server that is already a primary is left alone (not changed).
  - Refuses, changing nothing, when the server's system identifier differs from
    O(expected_system_identifier).
  - This module does not fence the old primary; the failover playbook does that first. It
    refuses to promote a standby that still streams from a primary (O(allow_streaming)).
extends_documentation_fragment:
  - pgha.cluster.attributes
  - pgha.cluster.postgres
options:
  timeout:
    description: Seconds to wait for the promotion to finish.
    type: int
    default: 60
  checkpoint:
    description: Run CHECKPOINT after promotion.
    type: bool
    default: true
  after_lsn:
    description:
      - Before anything else, wait (up to O(timeout) seconds) until this standby has
        received WAL beyond this location, e.g. the old primary's shutdown checkpoint in a
        switchover; fails without promoting when it does not get there.
    type: str
  expected_system_identifier:
    description: Refuse unless the server has this system identifier.
    type: str
  allow_streaming:
    description:
      - Promote even while the standby still streams from a primary. By default that is
        refused, because the primary it streams from is alive and promoting would make a
        second writable primary; fence the primary first.
    type: bool
    default: false
seealso:
  - module: pgha.cluster.pg_node_info
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Promote the switchover target once it has the old primary's shutdown checkpoint
  become: true
  become_user: postgres
  pgha.cluster.pg_promote:
    after_lsn: 0/5000028
    timeout: 30

- name: Promote the chosen standby
  become: true
  become_user: postgres
  pgha.cluster.pg_promote:
    expected_system_identifier: "{{ survey.system_identifier }}"
    timeout: 30
'''

RETURN = r'''
timeline:
  description: Timeline after the run.
  returned: always
  type: int
  sample: 2
promote_seconds:
  description: Time pg_promote took (0 when nothing was done).
  returned: always
  type: float
  sample: 0.41
diff:
  description: Role before and after.
  returned: always
  type: dict
  sample: {"before": {"role": "standby"}, "after": {"role": "primary"}}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.ansible_glue import ensure_psycopg2
from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import read_facts
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    DRIVER_ERRORS, PgConnectError, connect, login_argument_spec, safe_message)
from ansible_collections.pgha.cluster.plugins.module_utils.promotion import promote, wait_for_wal


def main():
    argument_spec = login_argument_spec()
    argument_spec.update(
        timeout=dict(type="int", default=60),
        checkpoint=dict(type="bool", default=True),
        expected_system_identifier=dict(type="str"),
        allow_streaming=dict(type="bool", default=False),
        after_lsn=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    params = module.params
    try:
        conn = connect(params)
    except PgConnectError as exc:
        module.fail_json(msg=str(exc))
    try:
        if params["after_lsn"]:
            wait_for_wal(conn, params["after_lsn"], params["timeout"])
        facts = read_facts(conn)
        expected = params["expected_system_identifier"]
        if expected and facts["system_identifier"] != expected:
            module.fail_json(msg="refusing to promote: system identifier %s is not the expected %s" % (
                facts["system_identifier"], expected))
        before = {"role": facts["role"]}
        receiver = facts["wal_receiver"] or {}
        if facts["in_recovery"] and receiver.get("status") == "streaming" and not params["allow_streaming"]:
            module.fail_json(msg="refusing to promote: this standby still streams from %s:%s, a live primary; "
                                 "fence that primary first (or pass allow_streaming=true)" % (
                                     receiver.get("sender_host"), receiver.get("sender_port")))
        if not facts["in_recovery"]:
            module.exit_json(changed=False, timeline=facts["timeline"], promote_seconds=0.0,
                             diff={"before": before, "after": before})
        if module.check_mode:
            module.exit_json(changed=True, timeline=facts["timeline"], promote_seconds=0.0,
                             diff={"before": before, "after": {"role": "primary"}})
        seconds = promote(conn, params["timeout"], params["checkpoint"])
        after = read_facts(conn)
    except DRIVER_ERRORS as exc:
        module.fail_json(msg="promotion failed: %s" % safe_message(exc, params))
    except RuntimeError as exc:
        module.fail_json(msg=str(exc))
    finally:
        conn.close()
    module.exit_json(changed=True, timeline=after["timeline"], promote_seconds=seconds,
                     diff={"before": before, "after": {"role": after["role"]}})


if __name__ == "__main__":
    main()
