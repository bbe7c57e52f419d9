"""Execution environments (issue 17): meta/execution-environment.yml, requirements.txt and bindep.txt
with ansible-builder (no container is built)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILDER = str(Path(sys.executable).parent / "ansible-builder")
# import name -> distribution name, for the third-party imports of plugins/
DISTRIBUTIONS = {"kazoo": "kazoo", "yaml": "PyYAML"}


def plugin_imports():
    found = set()
    for path in (ROOT / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"ansible", "ansible_collections"}


def requirement_names():
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(line.split(">")[0].split("=")[0].split("<")[0].strip().lower())
    return names


def test_requirements_name_every_third_party_import_of_the_plugins():
    imports = plugin_imports()
    assert imports == set(DISTRIBUTIONS), f"plugins/ import {sorted(imports)}: map them in DISTRIBUTIONS"
    assert {DISTRIBUTIONS[name].lower() for name in imports} <= requirement_names()


def test_builder_creates_a_context_from_the_definition(tmp_path):
    # The definition's paths are the collection root's: build from a project laid out the same way.
    for name in ("requirements.txt", "bindep.txt"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copy2(ROOT / "meta" / "execution-environment.yml", tmp_path / "execution-environment.yml")
    result = subprocess.run(
        [BUILDER, "create", "-f", "execution-environment.yml", "--context", "ctx",
         "--output-filename", "Containerfile"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    ctx = tmp_path / "ctx"
    containerfile = (ctx / "Containerfile").read_text()
    assert "_build/requirements.txt" in containerfile and "_build/bindep.txt" in containerfile
    assert "kazoo>=2.9" in (ctx / "_build" / "requirements.txt").read_text()
    assert (ctx / "_build" / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()


def test_builder_finds_the_collection_requirements(tmp_path):
    """What an EE that lists zkherd.ops under galaxy: gets: ansible-builder's introspection of the
    installed collection (PyYAML is left out by ansible-builder: ansible-core brings it)."""
    (tmp_path / "ansible_collections" / "zkherd").mkdir(parents=True)
    (tmp_path / "ansible_collections" / "zkherd" / "ops").symlink_to(ROOT)
    result = subprocess.run([BUILDER, "introspect", str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "kazoo>=2.9  # from collection zkherd.ops" in result.stdout
