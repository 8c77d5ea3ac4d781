# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  pcp_host:
    description: Host of the pgpool PCP port (the tools are always run with C(-h)).
    type: str
    default: localhost
  pcp_port:
    description: PCP port.
    type: int
    default: 9898
  pcp_user:
    description: PCP user from pcp.conf.
    type: str
    default: pcpadmin
  pcp_password:
    description:
      - Password of O(pcp_user). Passed through a temporary 0600 pcppass file, never on a command line.
      - When empty, O(pcp_passfile) (or the pcp tools' default C(~/.pcppass)) is used.
    type: str
    default: ''
  pcp_passfile:
    description: An existing pcppass file to use when O(pcp_password) is empty.
    type: path
'''
