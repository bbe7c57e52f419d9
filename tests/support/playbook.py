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

    def host(self, name):
        """This run seen from one host (one case of run_cases): its records only."""
        view = object.__new__(PlaybookRun)
        view.rc, view.output = self.rc, self.output
        view.records = [r for r in self.records if r.get("host") == name]
        return view

    def failure(self):
        """The message of the task that failed (this host's play ended there), or None."""
        failed = [r["result"] for r in self.records if r["status"] == "failed"]
        return str(failed[-1].get("msg", failed[-1])) if failed else None

    def changed(self):
        """How many task results reported a change (the recap's changed=)."""
        return sum(r["status"] == "changed" for r in self.records)


def run_playbook(tasks, hosts=None, play_vars=None, extra_args=(), env=None, defaults=None, timeout=300,
                 memory_limit=None, hosts_pattern="localhost", play_keywords=None):
    """Run *tasks* (a list of dicts, each with a unique `name`) in one play on localhost.
    Connection options default to *hosts* for every zkherd.ops module (module_defaults).
    *memory_limit* (bytes): the address space ansible-playbook and every process it starts may
    use (RLIMIT_AS), so that a test of a memory blow-up fails instead of taking the machine down."""
    module_defaults = dict(defaults or {})
    if hosts is not None:
        module_defaults.setdefault("hosts", hosts)
    play = {
        "name": "zkherd test",
        "hosts": hosts_pattern,
        "gather_facts": False,
        "vars": play_vars or {},
        "module_defaults": {"group/zkherd.ops.zookeeper": module_defaults},
        "tasks": tasks,
        **(play_keywords or {}),
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


def run_cases(cases, tasks=None, extra_args=(), env=None, timeout=900, forks=2):
    """Several independent cases in ONE ansible-playbook run (each start costs seconds of CPU): every
    case is an inventory host of its own (connection local, this Python) with its own variables, facts
    and tasks, so a failing case ends only its own host's play and a fact one case sets is not
    another's. *cases*: {name: {"vars": {...}, "tasks": [...]}} (or just the vars, with the shared
    *tasks*). Every module (handlers too) gets the case's name in $ZKHERD_CASE (for a stand-in
    command to tell the cases apart). Returns the PlaybookRun; .host(name) is one case's view
    (.failure(), [task], .changed()). *timeout* bounds the whole run: many cases, a loaded machine."""
    with tempfile.TemporaryDirectory(prefix="zkherd-cases-") as tmp:
        hosts, books = {}, {}
        for name, case in cases.items():
            case = case if "vars" in case else {"vars": case}
            text = yaml.safe_dump(case.get("tasks", tasks), sort_keys=False)
            # cases with the same tasks include one file: Ansible runs them side by side (forks)
            book = books.setdefault(text, Path(tmp) / ("tasks-%d.yml" % len(books)))
            book.write_text(text)
            hosts[name] = dict(case["vars"], ansible_connection="local", ansible_python_interpreter=sys.executable,
                               zkherd_case_tasks=str(book))
        inventory = Path(tmp) / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}, sort_keys=False))
        include = {"name": "case", "ansible.builtin.include_tasks": "{{ zkherd_case_tasks }}"}
        return run_playbook([include], extra_args=["-i", str(inventory), "--forks", str(forks), *extra_args],
                            env=env, timeout=timeout, hosts_pattern="all",
                            play_keywords={"environment": {"ZKHERD_CASE": "{{ inventory_hostname }}"}})
