#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: pg_switchover
short_description: Hand the primary role from this server to a standby without losing a commit
version_added: 0.1.0
description:
  - Runs on the primary, connects to the target standby (the O(login_host) options), then
    stops the local primary cleanly, reads its shutdown checkpoint location with
    C(pg_controldata), waits until the target has received WAL beyond it and promotes the
    target. All in one call, so writes pause only as long as these steps take.
  - Refuses before stopping anything when the target is not a standby streaming from this
    primary or its system identifier differs from this server's.
  - When the primary did not shut down cleanly, or the target does not receive the shutdown
    checkpoint in time, the target is not promoted and the old primary is started again,
    so the cluster keeps its primary; the module then fails.
  - Nothing happens when the target is already a primary and the local server is stopped
    (a switchover that already ran).
extends_documentation_fragment:
  - pgha.cluster.attributes
  - pgha.cluster.postgres
options:
  service:
    description: systemd unit of the local PostgreSQL server.
    type: str
    required: true
  data_directory:
    description: Data directory of the local server (read with C(pg_controldata)).
    type: path
    required: true
  bin_directory:
    description: Directory with the PostgreSQL programs of the local server's version.
    type: path
    required: true
  timeout:
    description: Seconds to wait for the shutdown checkpoint to reach the target, and for its promotion.
    type: int
    default: 30
seealso:
  - module: pgha.cluster.pg_promote
author: pgha contributors (@pgha)
'''

EXAMPLES = r'''
- name: Stop this primary and promote pg2 once it has the shutdown checkpoint
  pgha.cluster.pg_switchover:
    login_host: 10.89.0.12
    login_user: pgha_admin
    login_password: "{{ pgha_admin_password }}"
    service: postgresql@15-main
    data_directory: /var/lib/postgresql/15/main
    bin_directory: /usr/lib/postgresql/15/bin
'''

RETURN = r'''
checkpoint_lsn:
  description: The old primary's shutdown checkpoint location (empty when nothing was done).
  returned: always
  type: str
  sample: 0/5000028
stop_seconds:
  description: Time from the stop request until the old primary was down.
  returned: always
  type: float
  sample: 0.31
promote_seconds:
  description: Time from the old primary being down until the target was promoted.
  returned: always
  type: float
  sample: 0.18
timeline:
  description: The target's timeline after the run.
  returned: always
  type: int
  sample: 3
'''

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pgha.cluster.plugins.module_utils.ansible_glue import ensure_psycopg2
from ansible_collections.pgha.cluster.plugins.module_utils.pg_facts import read_facts
from ansible_collections.pgha.cluster.plugins.module_utils.postgres import (
    DRIVER_ERRORS, PgConnectError, connect, login_argument_spec, safe_message)
from ansible_collections.pgha.cluster.plugins.module_utils.promotion import controldata_field, promote, wait_for_wal


class Aborted(Exception):
    """The switchover stopped before promoting; the message says what state it left."""


class LocalServer:
    """The primary this module runs on, driven through systemd and pg_controldata."""

    def __init__(self, module):
        self.module, self.params = module, module.params

    def run(self, argv):
        rc, out, err = self.module.run_command(argv, environ_update={"LC_ALL": "C"})
        if rc != 0:
            raise Aborted("%s failed (rc %d): %s" % (" ".join(argv), rc, (err or out).strip()))
        return out

    def controldata(self):
        return self.run(["%s/pg_controldata" % self.params["bin_directory"], self.params["data_directory"]])

    def is_active(self):
        rc, out, err = self.module.run_command(["systemctl", "is-active", self.params["service"]])
        return out.strip() in ("active", "activating", "reloading")

    def stop(self):
        self.run(["systemctl", "stop", self.params["service"]])

    def start(self):
        self.run(["systemctl", "start", self.params["service"]])


def check_request(target, local_controldata):
    """Refuse (nothing stopped yet) unless this is a primary and the target a streaming standby of it."""
    state = controldata_field(local_controldata, "Database cluster state")
    if state != "in production":
        raise Aborted("refused, nothing changed: the local server is not a running primary (%s)" % state)
    identifier = controldata_field(local_controldata, "Database system identifier")
    if target["system_identifier"] != identifier:
        raise Aborted("refused, nothing changed: the target's system identifier %s is not this server's %s"
                      % (target["system_identifier"], identifier))
    receiver = target["wal_receiver"] or {}
    if not target["in_recovery"] or receiver.get("status") != "streaming":
        raise Aborted("refused, nothing changed: the target is not a streaming standby (role %s, receiver %s)"
                      % (target["role"], receiver.get("status", "down")))


def hand_over(server, conn, timeout):
    """Stop the local primary, then promote the target once it has the shutdown checkpoint."""
    started = time.time()
    server.stop()
    stopped = time.time()
    controldata = server.controldata()
    if controldata_field(controldata, "Database cluster state") != "shut down":
        server.start()
        raise Aborted("the primary did not shut down cleanly; the target may lack WAL: not promoted, "
                      "the old primary was started again")
    lsn = controldata_field(controldata, "Latest checkpoint location")
    try:
        wait_for_wal(conn, lsn, timeout)
    except RuntimeError as exc:
        server.start()
        raise Aborted("%s; the old primary was started again" % exc)
    promote(conn, timeout, checkpoint=True)
    return {"checkpoint_lsn": lsn, "stop_seconds": round(stopped - started, 3),
            "promote_seconds": round(time.time() - stopped, 3)}


def roles_diff(before, after):
    """Roles of the two servers before and after the hand-over (after None: as planned)."""
    def view(target_role, timeline, local_role):
        return {"target": {"role": target_role, "timeline": timeline}, "local": {"role": local_role}}
    if after is None:
        return {"before": view(before["role"], before["timeline"], "primary"),
                "after": view("primary", (before["timeline"] or 0) + 1, "stopped")}
    if after is before:
        return {"before": view(before["role"], before["timeline"], "stopped"),
                "after": view(before["role"], before["timeline"], "stopped")}
    return {"before": view(before["role"], before["timeline"], "primary"),
            "after": view(after["role"], after["timeline"], "stopped")}


def main():
    argument_spec = login_argument_spec()
    argument_spec.update(
        service=dict(type="str", required=True),
        data_directory=dict(type="path", required=True),
        bin_directory=dict(type="path", required=True),
        timeout=dict(type="int", default=30),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    ensure_psycopg2(module)
    params = module.params
    server = LocalServer(module)
    nothing = {"checkpoint_lsn": "", "stop_seconds": 0.0, "promote_seconds": 0.0}
    try:
        conn = connect(params)
    except PgConnectError as exc:
        module.fail_json(msg="refused, nothing changed: %s" % exc, **nothing)
    try:
        target = read_facts(conn)
        if not server.is_active():
            if target["in_recovery"]:
                raise Aborted("refused, nothing changed: the local server is not running and the target is a "
                              "standby; there is no primary to hand over from")
            module.exit_json(changed=False, timeline=target["timeline"], diff=roles_diff(target, target), **nothing)
        check_request(target, server.controldata())
        if module.check_mode:
            module.exit_json(changed=True, timeline=target["timeline"], diff=roles_diff(target, None), **nothing)
        result = hand_over(server, conn, params["timeout"])
        after = read_facts(conn)
        timeline = after["timeline"]
    except Aborted as exc:
        module.fail_json(msg=str(exc), **nothing)
    except (RuntimeError,) + DRIVER_ERRORS as exc:
        module.fail_json(msg="switchover failed after the old primary stopped: %s" % safe_message(exc, params),
                         **nothing)
    finally:
        conn.close()
    module.exit_json(changed=True, timeline=timeline, diff=roles_diff(target, after), **result)


if __name__ == "__main__":
    main()
