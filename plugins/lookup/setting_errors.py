# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: setting_errors
short_description: Check the type, range and choices of every pgha setting the play can see
version_added: 0.1.0
description:
  - Reads each pgha setting that is defined for the host (inventory, group_vars, extra
    vars, role defaults in scope) and returns one message per invalid value, naming the
    variable, the value and what is allowed. An empty list means every setting is valid.
  - Covers the numeric settings of every role (ports, timeouts, health check and watchdog
    periods, the lease), the enumerations (C(pgha_mode), C(pgha_synchronous_mode), ...),
    the booleans, the fence commands (an argv list starting with an absolute path), and the
    extra settings mappings C(pgpool_settings) and
    C(postgresql_settings), which may not replace what pgha sets itself (the failover
    hooks, the watchdog, the replication timeouts the lease rests on).
  - A C(pgha_), C(pgpool_) or C(keeper_) variable that the collection never reads is
    refused as a typo, with the closest known name.
  - The same table is in C(plugins/module_utils/settings.py); site.yml and every operation
    playbook call it in their first play, before any host is changed.
author: pgha contributors (@pgha)
options: {}
'''

EXAMPLES = r'''
- name: Check every setting before any host is touched
  vars:
    errors: "{{ lookup('pgha.cluster.setting_errors', wantlist=true) }}"
  ansible.builtin.assert:
    that: errors | length == 0
    fail_msg: "{{ errors | join('; ') }}"
'''

RETURN = r'''
_raw:
  description: One message per invalid setting; empty when all are valid.
  type: list
  elements: str
'''

from ansible.plugins.lookup import LookupBase

import os

from ansible_collections.pgha.cluster.plugins.module_utils.settings import (
    collection_names, known_settings, setting_errors, unknown_setting_errors)

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        self._templar.available_variables = variables
        values = {}
        for name in known_settings():
            if name in variables:
                values[name] = self._templar.template(variables[name])
        return unknown_setting_errors(variables, collection_names(COLLECTION_ROOT)) + setting_errors(values)
