# -*- coding: utf-8 -*-
# Copyright: pgha contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Modules that change state: check mode, diff and idempotence fully supported.
    DOCUMENTATION = r'''
attributes:
  check_mode:
    description: Reports what would change without changing it.
    support: full
  diff_mode:
    description: Returns the state before and after.
    support: full
  idempotent:
    description: A second run with the same arguments reports no change.
    support: full
'''

    # Modules that only read or decide.
    INFO_MODULE = r'''
attributes:
  check_mode:
    description: Changes nothing; runs the same in check mode.
    support: full
  diff_mode:
    description: Returns no diff.
    support: none
  idempotent:
    description: Never changes anything.
    support: full
'''
