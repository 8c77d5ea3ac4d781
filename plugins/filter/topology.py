# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Playbooks read decisions from the decision core through these filters."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.pgha.cluster.plugins.module_utils.rollout import service_action
from ansible_collections.pgha.cluster.plugins.module_utils.topology import (
    aside_to_prune, cluster_state, deploy_primary, rebuild_need, rebuild_source, service_plan)


class FilterModule(object):

    def filters(self):
        return {"rebuild_need": rebuild_need, "service_action": service_action, "deploy_primary": deploy_primary,
                "service_plan": service_plan, "rebuild_source": rebuild_source, "cluster_state": cluster_state,
                "aside_to_prune": aside_to_prune}
