# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Markers that pause automatic action (plain Python): the maintenance marker and the
operation lock of a playbook. A marker older than its limit is stale (a playbook that died
without giving it back) and no longer pauses anything: the guard and the hook act again."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

DEFAULT_MAX_AGE = 900.0
# Operations that hold the cluster lock without pausing automatic failover: they never promote
# or stop a primary, and they re-check the roles before each step that changes a node.
NOT_PAUSING = ("rebuild", "follow_primary")


def lock_operation(path):
    """The operation named in a lock directory's holder file ('' when unknown or not a lock)."""
    try:
        with open(os.path.join(path, "holder")) as holder:
            words = holder.read().split()
    except (IOError, OSError):
        return ""
    return words[0] if words else ""


def marker_age(path, now=None):
    """Seconds since the marker was written, or None when it does not exist."""
    try:
        written = os.stat(path).st_mtime
    except OSError:
        return None
    return max(0.0, (time.time() if now is None else now) - written)


def pausing_marker(paths, max_age=DEFAULT_MAX_AGE, now=None):
    """(path, age) of the first marker in force; (None, stale) where stale lists the
    markers ignored for their age. A lock held by an operation that does not pause (a rebuild)
    is not in force."""
    stale = []
    for path in paths:
        age = marker_age(path, now) if path else None
        if age is None or lock_operation(path) in NOT_PAUSING:
            continue
        if age <= max_age:
            return path, age
        stale.append((path, age))
    return None, stale
