# Copyright (c) zkherd contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only callback: writes every task result of a playbook run as JSON to $ZKHERD_RECORD,
so that tests assert on real module results instead of parsing screen output."""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: zkherd_record
type: aggregate
short_description: Record task results as JSON for zkherd's tests
description: Writes a list of {task, status, result} to the file named by E(ZKHERD_RECORD).
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "zkherd_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []

    def _record(self, result, status):
        # ansible-core 2.19 keeps `failed` out of the result it hands to callbacks: put it back
        outcome = dict(result._result, failed=status == "failed")
        self.records.append({"task": result._task.get_name(), "host": result._host.get_name(), "status": status,
                             "result": outcome})

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["ZKHERD_RECORD"], "w", encoding="utf-8") as handle:
            json.dump(self.records, handle, default=str)
