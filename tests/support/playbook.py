"""Run real ansible-playbook with zkherd.ops tasks and get each task's result back."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"


class PlaybookRun:
    def __init__(self, proc, records):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.records = records

    def __getitem__(self, name):
        """The result of the task called *name* (the last one, if several have it)."""
        for record in reversed(self.records):
            if record["task"] == name:
                return record["result"]
        raise KeyError("no task %r ran; output:\n%s" % (name, self.output))

    def status(self, name):
        return next(r["status"] for r in reversed(self.records) if r["task"] == name)


def run_playbook(tasks, hosts=None, play_vars=None, extra_args=(), env=None, defaults=None, timeout=300,
                 memory_limit=None):
    """Run *tasks* (a list of dicts, each with a unique `name`) in one play on localhost.
    Connection options default to *hosts* for every zkherd.ops module (module_defaults).
    *memory_limit* (bytes): the address space ansible-playbook and every process it starts may
    use (RLIMIT_AS), so that a test of a memory blow-up fails instead of taking the machine down."""
    module_defaults = dict(defaults or {})
    if hosts is not None:
        module_defaults.setdefault("hosts", hosts)
    play = {
        "name": "zkherd test",
        "hosts": "localhost",
        "gather_facts": False,
        "vars": play_vars or {},
        "module_defaults": {"group/zkherd.ops.zookeeper": module_defaults},
        "tasks": tasks,
    }
    with tempfile.TemporaryDirectory(prefix="zkherd-pb-") as tmp:
        book = Path(tmp) / "play.yml"
        book.write_text(yaml.safe_dump([play], sort_keys=False))
        record = Path(tmp) / "record.json"
        full_env = dict(os.environ)
        full_env.update(
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
            ANSIBLE_CALLBACKS_ENABLED="zkherd_record",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            LANG="C.UTF-8",
            ZKHERD_RECORD=str(record),
        )
        full_env.update(env or {})
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), str(book), *extra_args],
            cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout, check=False,
            preexec_fn=_limit_memory(memory_limit) if memory_limit else None,
        )
        records = json.loads(record.read_text()) if record.exists() else []
    return PlaybookRun(proc, records)


def _limit_memory(limit):
    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return preexec
