"""Drain flags for the runner: the format and the waiting live in the collection's shared
module_utils/common/drainflags.py (zkherd.common.drainflags), one copy for `zkherd drain`, the
runner, `zkherd status` and the zkherd.ops.drain module. This module only names them for the runner."""

from __future__ import annotations

from zkherd.common.drainflags import (
    ANSWERS,
    FLAGS,
    FlagNotEmpty,
    answer_data,
    answer_path,
    answered,
    clear_flag,
    decode,
    encode,
    flag_path,
    flags_of,
    set_flag,
)

__all__ = ["ANSWERS", "FLAGS", "FlagNotEmpty", "answer_data", "answer_path", "answered", "clear_flag", "decode",
           "encode", "flag_path", "flags_of", "set_flag"]
