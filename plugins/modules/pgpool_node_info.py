#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgpool_node_info
short_description: Read pgpool-II's view of its backends and of its watchdog
version_added: 0.1.0
description:
  - Reads C(SHOW pool_nodes) through the pgpool port (O(source=sql)) or C(pcp_node_info)
    through PCP (O(source=pcp)) and returns typed fields per backend, parsed by column
    name (pgpool-II 4.3 to 4.6; older versions best effort).
  - Reports where pgpool's view (status, role) disagrees with what the backend reports
    (pg_status, pg_role).
  - With O(watchdog=true) also reads C(pcp_watchdog_info) (leader, quorum, members).
extends_documentation_fragment:
  - pgha.cluster.attributes.info_module
  - pgha.cluster.postgres
  - pgha.cluster.pgpool
options:
  login_port:
    description: pgpool's port for O(source=sql).
    type: int
    default: 9999
    aliases: [port]
  source:
    description: Where to read the backend list from.
    type: str
    choices: [sql, pcp]
    default: sql
  watchdog:
    description: Also read the watchdog state through PCP.
    type: bool
    default: false
seealso:
  - module: pgha.cluster.pgpool_node
  - module: pgha.cluster.pg_node_info
notes:
  - For O(source=sql) set O(login_port) to pgpool's port (9999 by default in pgpool, not 5432).
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Read pgpool's backends through the pgpool port
  pgha.cluster.pgpool_node_info:
    login_host: 10.89.50.100
    login_port: 9999
    login_user: pgha_check
    login_password: "{{ pgha_pgpool_check_password }}"
  register: pool

- name: Read backends and watchdog through PCP
  pgha.cluster.pgpool_node_info:
    source: pcp
    watchdog: true
    pcp_host: localhost
    pcp_password: "{{ pgha_pcp_password }}"
  register: pool
'''

RETURN = r'''
nodes:
  description: One entry per backend, typed (node_id, port, replication_delay int; lb_weight float).
  returned: always
  type: list
  elements: dict
  sample: [{"node_id": 0, "hostname": "pg1", "port": 5432, "status": "up", "pg_status": "up",
            "role": "primary", "pg_role": "primary", "lb_weight": 0.333333, "replication_delay": 0,
            "replication_state": "", "replication_sync_state": "", "last_status_change": "2026-11-22 21:01:12"}]
primary_node_id:
  description: Node id pgpool treats as primary (null when none or ambiguous).
  returned: always
  type: int
  sample: 0
up_node_ids:
  description: Node ids pgpool has up (or waiting).
  returned: always
  type: list
  elements: int
  sample: [0, 1, 2]
down_node_ids:
  description: Node ids pgpool has down (or unused).
  returned: always
  type: list
  elements: int
  sample: []
disagreements:
  description: Places where pgpool's view differs from what the backend reports.
  returned: always
  type: list
  elements: str
  sample: ["node 0: detached in pgpool but running as a primary"]
watchdog:
  description: Watchdog state (enabled, leader, quorum, cluster, nodes) when O(watchdog=true).
  returned: when watchdog is true
  type: dict
  sample: {"enabled": true, "leader": "pg1", "quorum": true}
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.ansible_glue import (
    ensure_psycopg2, pcp_argument_spec, pcp_from_params)
from ansible_collections.pgha.cluster.plugins.module_utils.pgpool import (
    PcpError, normalize_pool_node, summarize)
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    DRIVER_ERRORS, PgConnectError, connect, login_argument_spec, query, safe_message)


def read_nodes_sql(module):
    ensure_psycopg2(module)
    try:
        conn = connect(module.params)
    except PgConnectError as exc:
        module.fail_json(msg="SHOW pool_nodes: %s" % exc)
    try:
        rows = query(conn, "SHOW pool_nodes")
    except DRIVER_ERRORS as exc:
        module.fail_json(msg="SHOW pool_nodes failed: %s" % safe_message(exc, module.params))
    finally:
        conn.close()
    return [normalize_pool_node(row) for row in rows]


def main():
    argument_spec = login_argument_spec()
    argument_spec["login_port"]["default"] = 9999
    argument_spec.update(pcp_argument_spec())
    argument_spec.update(
        source=dict(type="str", choices=["sql", "pcp"], default="sql"),
        watchdog=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    pcp = pcp_from_params(module)
    result = {}
    try:
        nodes = pcp.node_info() if module.params["source"] == "pcp" else read_nodes_sql(module)
        if module.params["watchdog"]:
            result["watchdog"] = pcp.watchdog_info()
    except PcpError as exc:
        module.fail_json(msg=str(exc))
    result.update(summarize(nodes))
    module.exit_json(changed=False, nodes=nodes, **result)


if __name__ == "__main__":
    main()
