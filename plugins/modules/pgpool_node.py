#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pgpool_node
short_description: Set the state of one backend in pgpool-II (attach, detach, promote, recover)
version_added: 0.1.0
description:
  - Reads the backend's state through PCP first and acts only when it differs
    (C(pcp_attach_node), C(pcp_detach_node), C(pcp_promote_node), C(pcp_recovery_node)).
  - The PCP password goes through a temporary 0600 pcppass file, never a command line.
extends_documentation_fragment:
  - pgha.cluster.attributes
  - pgha.cluster.pgpool
options:
  node_id:
    description: pgpool backend id.
    type: int
    required: true
  state:
    description:
      - C(attached) the backend is up in pgpool; C(detached) it is down.
      - C(primary) pgpool treats it as the primary (C(pcp_promote_node); with
        O(switchover=true) pgpool also detaches the old primary and runs its failover hooks).
        This does not promote PostgreSQL itself; use M(pgha.cluster.pg_promote) for that.
      - C(recovered) online recovery with C(pcp_recovery_node) when the backend is down.
    type: str
    choices: [attached, detached, primary, recovered]
    default: attached
  switchover:
    description: With O(state=primary), pass C(--switchover) to C(pcp_promote_node).
    type: bool
    default: false
  gracefully:
    description: With O(state=detached), wait for clients to disconnect (C(-g)).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait until pgpool reports the new state (pgpool applies pcp requests
        asynchronously, through the watchdog leader when there is one). C(0) does not wait.
    type: int
    default: 20
seealso:
  - module: pgha.cluster.pgpool_node_info
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Attach backend 1 after it streams again
  pgha.cluster.pgpool_node:
    node_id: 1
    state: attached
    pcp_password: "{{ pgha_pcp_password }}"

- name: Make pgpool treat backend 2 as the primary
  pgha.cluster.pgpool_node:
    node_id: 2
    state: primary
    pcp_password: "{{ pgha_pcp_password }}"
'''

RETURN = r'''
node:
  description: The backend as pgpool reports it after the run.
  returned: always
  type: dict
  sample: {"node_id": 1, "hostname": "pg2", "status": "up", "role": "standby"}
diff:
  description: pgpool status and role before and after.
  returned: always
  type: dict
  sample: {"before": {"status": "down", "role": "standby"}, "after": {"status": "up", "role": "standby"}}
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.ansible_glue import (
    pcp_argument_spec, pcp_from_params)
from ansible_collections.pgha.cluster.plugins.module_utils.pgpool import PcpError

UP = ("up", "waiting")


def find_node(nodes, node_id):
    for node in nodes:
        if node["node_id"] == node_id:
            return node
    return None


def needs_action(node, state):
    if state in ("attached", "recovered"):
        return node["status"] not in UP
    if state == "detached":
        return node["status"] in UP
    return node["role"] != "primary"


def act(pcp, params):
    node_id, state = params["node_id"], params["state"]
    if state == "attached":
        pcp.attach(node_id)
    elif state == "detached":
        pcp.detach(node_id, params["gracefully"])
    elif state == "primary":
        pcp.promote(node_id, params["switchover"])
    else:
        pcp.recover(node_id)


def wait_for_state(pcp, params):
    """Re-read the backend until it reached the requested state or the timeout passed."""
    deadline = time.time() + params["wait_timeout"]
    while True:
        node = find_node(pcp.node_info(), params["node_id"])
        if not needs_action(node, params["state"]) or time.time() >= deadline:
            return node
        time.sleep(0.5)


def view(node):
    return {"status": node["status"], "role": node["role"]}


def main():
    argument_spec = pcp_argument_spec()
    argument_spec.update(
        node_id=dict(type="int", required=True),
        state=dict(type="str", choices=["attached", "detached", "primary", "recovered"], default="attached"),
        switchover=dict(type="bool", default=False),
        gracefully=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=20),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    pcp = pcp_from_params(module)
    node_id = module.params["node_id"]
    try:
        before = find_node(pcp.node_info(), node_id)
        if before is None:
            module.fail_json(msg="pgpool has no backend with node_id %d" % node_id)
        changed = needs_action(before, module.params["state"])
        after = before
        if changed and not module.check_mode:
            act(pcp, module.params)
            after = wait_for_state(pcp, module.params)
    except PcpError as exc:
        module.fail_json(msg=str(exc))
    if needs_action(after, module.params["state"]) and not module.check_mode:
        module.fail_json(msg="pgpool did not report backend %d as %s within %d s" % (
            node_id, module.params["state"], module.params["wait_timeout"]), node=after)
    module.exit_json(changed=changed, node=after, diff={"before": view(before), "after": view(after)})


if __name__ == "__main__":
    main()
