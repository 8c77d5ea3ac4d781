# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The primary_conninfo pg_follow writes, for a data directory prepared while the server is stopped."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.cluster.plugins.module_utils.replication import primary_conninfo


class FilterModule(object):

    def filters(self):
        return {"primary_conninfo": primary_conninfo}
