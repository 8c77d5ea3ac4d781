#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: failover_plan
short_description: Decide a failover from every node's facts (the pgha decision core)
version_added: 0.1.0
description:
  - Pure decision, no I/O. Given the results of M(pgha.cluster.pg_node_info) for every
    node, returns which standby to promote (highest timeline and received LSN, a
    synchronous one on ties), which nodes to fence and which to repoint.
  - Fails, changing nothing, with the reason when the request is unsafe - a healthy
    primary is still reachable, two primaries run, no standby is reachable, the nodes
    disagree on the system identifier, the failed node or candidate is unknown, or the
    candidate is behind another standby - unless O(force=true) where forcing is safe to ask.
  - The same code decides in pgpool's failover hook.
options:
  nodes:
    description: Node name to its pg_node_info result; an unreachable host may be given as C(reachable=false).
    type: dict
    required: true
  failed_node:
    description: The node reported as failed (pgpool passes it to the hook).
    type: str
  candidate:
    description: The standby to promote instead of the best one; refused when behind another standby.
    type: str
  force:
    description: Fail over although the primary still answers (it is fenced), or promote a candidate that is behind.
    type: bool
    default: false
extends_documentation_fragment:
  - pgha.cluster.attributes.info_module
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Decide the failover
  pgha.cluster.failover_plan:
    nodes: "{{ dict(groups['pgha_postgresql'] | zip(groups['pgha_postgresql'] | map('extract', hostvars, 'survey'))) }}"
    failed_node: pg1
  run_once: true
  delegate_to: localhost
  register: plan
'''

RETURN = r'''
action:
  description: C(promote), or C(none) when a reachable primary already serves (a rerun after success).
  returned: always
  type: str
  sample: promote
candidate:
  description: The standby to promote.
  returned: when action is promote
  type: str
  sample: pg3
fence:
  description: Nodes to fence (the failed node, a live primary when forced, every unreachable node).
  returned: when action is promote
  type: list
  elements: str
  sample: [pg1]
follow:
  description: Standbys to repoint at the candidate.
  returned: when action is promote
  type: list
  elements: str
  sample: [pg2]
primary:
  description: The primary already serving.
  returned: when action is none
  type: str
  sample: pg2
reason:
  description: Why nothing needs doing.
  returned: when action is none
  type: str
  sample: pg2 is a reachable primary, nothing to fail over
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.topology import Refusal, plan_failover


def normalize(nodes):
    """Ansible's unreachable or failed results count as unreachable nodes."""
    return dict((name, facts if isinstance(facts, dict) and facts.get("reachable") else {"reachable": False})
                for name, facts in nodes.items())


def main():
    module = AnsibleModule(
        argument_spec=dict(
            nodes=dict(type="dict", required=True),
            failed_node=dict(type="str"),
            candidate=dict(type="str"),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        plan = plan_failover(normalize(p["nodes"]), p["failed_node"] or None, p["candidate"] or None, p["force"])
    except Refusal as exc:
        module.fail_json(msg="refused, nothing changed: %s" % exc, refused=True)
    module.exit_json(changed=False, **plan)


if __name__ == "__main__":
    main()
