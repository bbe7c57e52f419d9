# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The member filter shared by the farm_info module, the farm lookup and the farm inventory plugin
(parsed by plugins/module_utils/common/farm.py: parse_filter)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  filter:
    description:
      - Members to keep; every comma-separated term must hold. C(field=value), C(field!=value),
        C(field<N) (also C(<=), C(>), C(>=)), C(field) (present and not empty, 0 or false),
        C(!field). Fields are dotted paths, for example V(enabled=1,!maint,mysql.replication_delay<10).
      - Values compare as text. Members joined from a DJB directory hold strings, and V(enabled=1)
        matches both C("1") and C(1).
    type: str
"""
