# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a rolling change does to one node's service (plain Python, no I/O): site.yml reads
the answer through the filter pgha.cluster.service_action."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def service_action(running, started_at, file_times, changed_files, reload_only_files=(),
                   restart_pending=False, reload_pending=False):
    """The systemd state to ask for after a service's files were put in place: 'started',
    'restarted', 'reloaded', or 'none' when nothing changed.

    running: the service is active; started_at: when it became active (epoch seconds);
    file_times: modification times of the files it reads at start; changed_files: names put
    in place by this run; reload_only_files: names a reload applies; restart_pending /
    reload_pending: other changes of this run (handlers). A file newer than the running
    service means a restart too: an earlier run wrote it and failed before restarting."""
    if not running:
        return "started"
    stale = max([int(t) for t in file_times] or [0]) > int(started_at or 0)
    restart_files = set(changed_files) - set(reload_only_files)
    if stale or restart_files or restart_pending:
        return "restarted"
    if changed_files or reload_pending:
        return "reloaded"
    return "none"
