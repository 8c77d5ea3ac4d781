# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  login_user:
    description: The role to connect as.
    type: str
    default: postgres
    aliases: [login]
  login_password:
    description: Password of O(login_user); never shown in output.
    type: str
    default: ''
  login_host:
    description: Host to connect to; empty means the local Unix socket.
    type: str
    default: ''
    aliases: [host]
  login_unix_socket:
    description: Directory of the local Unix socket.
    type: str
    default: ''
    aliases: [unix_socket]
  login_port:
    description: Port to connect to.
    type: int
    default: 5432
    aliases: [port]
  login_db:
    description: Database to connect to.
    type: str
    default: postgres
    aliases: [db]
  ssl_mode:
    description: libpq sslmode.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of CA certificates the server's certificate must chain to (libpq's sslrootcert),
        for O(ssl_mode=verify-ca) or O(ssl_mode=verify-full).
    type: str
    default: ''
    aliases: [ssl_rootcert]
  connect_timeout:
    description: Seconds to wait for a connection.
    type: int
    default: 5
requirements:
  - psycopg2
'''
