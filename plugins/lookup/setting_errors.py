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
  - In pgpool mode, two services told to listen on one port of one host are refused, among
    pgpool's four ports (C(pgha_pgpool_port), C(pgha_pcp_port), C(pgpool_wd_port),
    C(pgpool_heartbeat_port), the last two from the pgpool role's defaults unless set), and
    C(pgha_postgresql_port) beside them when a node is in both groups.
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

import yaml

from ansible_collections.pgha.cluster.plugins.module_utils.settings import (
    ORDERED, POOL_PORTS, collection_names, known_settings, setting_errors, unknown_setting_errors)

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        self._templar.available_variables = variables
        values = {}
        for name in known_settings():
            if name in variables:
                values[name] = self._templar.template(variables[name])
        # A port or a heartbeat time left at its default (in a role not loaded yet) can clash
        # with one set here.
        for name, value in role_defaults().items():
            values.setdefault(name, value)
        groups = variables.get("groups") or {}
        colocated = bool(set(groups.get("pgha_postgresql") or []) & set(groups.get("pgha_pgpool") or []))
        return unknown_setting_errors(variables, collection_names(COLLECTION_ROOT)) + setting_errors(values, colocated)


def role_defaults():
    """The defaults compared with a setting the user gives (roles not loaded yet): pgpool's
    ports and heartbeat times, the locale a given encoding must match."""
    compared = {"pgpool": set(POOL_PORTS) | {name for pair in ORDERED for name in pair},
                "postgresql": {"postgresql_locale", "postgresql_encoding"}}
    found = {}
    for role, names in compared.items():
        with open(os.path.join(COLLECTION_ROOT, "roles", role, "defaults", "main.yml")) as handle:
            defaults = yaml.safe_load(handle) or {}
        found.update((name, defaults[name]) for name in names if name in defaults)
    return found
