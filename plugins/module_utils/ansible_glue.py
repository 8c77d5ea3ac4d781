# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The few helpers that bind the plain-Python core to AnsibleModule."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.pgha.cluster.plugins.module_utils.pgpool import Pcp
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR)


def pcp_argument_spec():
    return dict(
        pcp_host=dict(type="str", default="localhost"),
        pcp_port=dict(type="int", default=9898),
        pcp_user=dict(type="str", default="pcpadmin"),
        pcp_password=dict(type="str", default="", no_log=True),
        pcp_passfile=dict(type="path"),
    )


def ensure_psycopg2(module):
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))


def module_runner(module):
    def runner(argv, env):
        return module.run_command(argv, environ_update=env)
    return runner


def pcp_from_params(module):
    p = module.params
    return Pcp(module_runner(module), p["pcp_host"], p["pcp_port"], p["pcp_user"],
               password=p["pcp_password"] or None, passfile=p["pcp_passfile"])
