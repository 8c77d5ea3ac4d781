#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_node_info
short_description: Read a PostgreSQL node's role, timeline, WAL positions and replication state
version_added: 0.1.0
description:
  - Connects to one PostgreSQL server and returns what failover decisions need, read from
    the server itself (C(pg_is_in_recovery()), timeline, LSNs, WAL receiver, replication
    clients, slots, system identifier), plus whether the pgha fence lock file is present.
  - With O(fail_on_unreachable=false) an unreachable server yields C(reachable=false) and
    the reason instead of a failure, so a failover can survey dead nodes.
extends_documentation_fragment:
  - pgha.cluster.attributes.info_module
  - pgha.cluster.postgres
options:
  fail_on_unreachable:
    description: Fail when the server cannot be reached or queried.
    type: bool
    default: true
  fence_lock_file:
    description:
      - Path of the lock file that marks a fenced old primary. Checked on the host the
        module runs on.
    type: path
    default: /var/lib/pgha/fenced
  data_directory:
    description:
      - Data directory of the server. When the server does not answer, its control file is
        read with C(pg_controldata) (needs O(bin_directory)), and its C(pg_wal) listed, for
        RV(stopped_timeline) and RV(stopped_state). Empty - not read.
    type: path
    default: ''
  bin_directory:
    description: Directory of C(pg_controldata), for O(data_directory).
    type: path
    default: ''
seealso:
  - module: pgha.cluster.pgpool_node_info
  - module: pgha.cluster.pg_promote
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Read the facts of the local server as postgres
  become: true
  become_user: postgres
  pgha.cluster.pg_node_info:
    fail_on_unreachable: false
  register: node

- name: Show whether it is a standby
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} is a {{ node.role }} on timeline {{ node.timeline }}"
'''

RETURN = r'''
reachable:
  description: Whether the server answered.
  returned: always
  type: bool
  sample: true
reason:
  description: Why the server could not be read (no secrets).
  returned: when reachable is false
  type: str
  sample: "cannot connect to pg1:5432 as postgres: connection refused"
in_recovery:
  description: Result of pg_is_in_recovery(); null when unreachable.
  returned: always
  type: bool
  sample: false
role:
  description: primary, standby or unknown.
  returned: always
  type: str
  sample: primary
server_version:
  description: PostgreSQL version string.
  returned: when reachable
  type: str
  sample: "15.14 (Debian 15.14-0+deb12u1)"
server_version_num:
  description: PostgreSQL version number.
  returned: when reachable
  type: int
  sample: 150014
system_identifier:
  description: Cluster system identifier (text, it exceeds JSON integer precision).
  returned: when reachable
  type: str
  sample: "7441234567890123456"
timeline:
  description: Current timeline (WAL insert timeline on a primary, highest known on a standby).
  returned: when reachable
  type: int
  sample: 2
current_lsn:
  description: pg_current_wal_lsn() on a primary, null on a standby.
  returned: when reachable
  type: str
  sample: 0/3000148
current_lsn_bytes:
  description: current_lsn as a byte position.
  returned: when reachable
  type: int
  sample: 50331976
received_lsn:
  description: Last WAL received and flushed on a standby; the current LSN on a primary.
  returned: when reachable
  type: str
  sample: 0/3000148
received_lsn_bytes:
  description: received_lsn as a byte position.
  returned: when reachable
  type: int
  sample: 50331976
replayed_lsn:
  description: Last WAL replayed on a standby.
  returned: when reachable
  type: str
  sample: 0/3000148
replayed_lsn_bytes:
  description: replayed_lsn as a byte position.
  returned: when reachable
  type: int
  sample: 50331976
data_directory:
  description: The data directory (needs superuser or pg_read_all_settings).
  returned: when reachable
  type: str
  sample: /var/lib/postgresql/15/main
synchronous_standby_names:
  description: Current synchronous_standby_names.
  returned: when reachable
  type: str
  sample: ANY 1 (pg2, pg3)
synchronous_commit:
  description: Current synchronous_commit.
  returned: when reachable
  type: str
  sample: "on"
wal_receiver:
  description: Row of pg_stat_wal_receiver (status, sender_host, sender_port, slot_name, received_tli, flushed_lsn, conninfo) or null.
  returned: when reachable
  type: dict
  sample: {"status": "streaming", "sender_host": "10.89.50.11", "sender_port": 5432, "slot_name": "pg2"}
replication:
  description: Rows of pg_stat_replication with lag_bytes.
  returned: when reachable
  type: list
  elements: dict
  sample: [{"application_name": "pg2", "state": "streaming", "sync_state": "async", "lag_bytes": 0}]
replication_slots:
  description: Rows of pg_replication_slots.
  returned: when reachable
  type: list
  elements: dict
  sample: [{"slot_name": "pg2", "slot_type": "physical", "active": true}]
fence_lock_present:
  description: Whether the fence lock file exists on the host the module ran on.
  returned: always
  type: bool
  sample: false
stopped_timeline:
  description:
    - The timeline a server that does not answer was last on - the newest of its control file's
      checkpoint and minimum recovery timelines and of the timeline history files in its
      C(pg_wal) (a promotion not yet followed by a checkpoint is only there).
  returned: when the server does not answer and O(data_directory) could be read
  type: int
  sample: 3
stopped_state:
  description: The control file's database cluster state of a server that does not answer.
  returned: when the server does not answer and O(data_directory) could be read
  type: str
  sample: shut down
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.ansible_glue import ensure_psycopg2
from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import survey_node
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import login_argument_spec
from ansible_collections.pgha.cluster.plugins.module_utils.promotion import controldata_field, stopped_timeline, wal_names


def control_file(module):
    """stopped_timeline and stopped_state from pg_controldata, or {} when it cannot be read."""
    data, bindir = module.params["data_directory"], module.params["bin_directory"]
    if not data or not bindir or not os.path.isdir(data):
        return {}
    rc, out, unused_err = module.run_command(["%s/pg_controldata" % bindir, data], environ_update={"LC_ALL": "C"})
    timeline = stopped_timeline(out, wal_names(data)) if rc == 0 else None
    if timeline is None:
        return {}
    return {"stopped_timeline": timeline, "stopped_state": controldata_field(out, "Database cluster state")}


def main():
    argument_spec = login_argument_spec()
    argument_spec.update(
        fail_on_unreachable=dict(type="bool", default=True),
        fence_lock_file=dict(type="path", default="/var/lib/pgha/fenced"),
        data_directory=dict(type="path", default=""),
        bin_directory=dict(type="path", default=""),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    facts = survey_node(module.params, module.params["fence_lock_file"])
    if not facts["reachable"]:
        facts.update(control_file(module))
    if not facts["reachable"] and module.params["fail_on_unreachable"]:
        module.fail_json(msg=facts["reason"], **facts)
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
