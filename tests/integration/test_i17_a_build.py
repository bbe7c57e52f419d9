"""Issue 17, part a: the collection tarball and the repository's own pointers.

`ansible-galaxy collection build` (the one in .venv) runs on a copy of the checkout in which every
cache and build directory a developer's machine holds after `make bootstrap` and a test run has been
planted; the tarball is then listed: none of them may be in it, and everything a user of the
collection needs must be. The same planted paths must be ignored by git. Also: every `make TARGET`
the repository's texts name exists, and no link of the README or docs leads out of the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GALAXY = REPO / ".venv" / "bin" / "ansible-galaxy"

# What a checkout holds after `make bootstrap`, a test run, a wheel build, `make demo`/molecule
# (the generated credentials) and a previous collection build. Each path is made as a directory
# holding one file (or as the file itself when it has a suffix of a file).
PLANTED = [
    ".venv/bin/python",
    ".cache/collections/ansible_collections/zkherd/x",
    ".hypothesis/examples/x",
    ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/0.17.5/x",
    ".mypy_cache/x",
    ".tox/x",
    ".nox/x",
    ".coverage",
    "htmlcov/index.html",
    "tests/output/junit/x.xml",
    "tests/integration/.pytest_cache/x",
    "zkherd.egg-info/PKG-INFO",
    "runner/zkherd.egg-info/PKG-INFO",
    "build/lib/zkherd/__init__.py",
    "dist/zkherd-0.1.0-py3-none-any.whl",
    "zkherd-ops-0.0.9.tar.gz",
    "runner/zkherd/__pycache__/cli.cpython-311.pyc",
    "plugins/module_utils/common/__pycache__/x.cpython-311.pyc",
    "bench/results/x.json",
    "playbooks/credentials/zkherd-auth",
    "molecule/default/credentials/zkherd-auth",
]

# The parts of the tarball a user needs: the plugins, the roles, the runner's source with what the
# runner role's build_wheel.py copies (pyproject.toml, README.md, runner/zkherd,
# plugins/module_utils/common), the docs and the collection's metadata.
NEEDED = [
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "meta/runtime.yml",
    "pyproject.toml",
    "runner/zkherd/__init__.py",
    "runner/zkherd/cli.py",
    "plugins/module_utils/common/__init__.py",
    "plugins/modules/znode.py",
    "plugins/lookup/znode.py",
    "plugins/inventory/farm.py",
    "roles/runner/tasks/main.yml",
    "roles/runner/files/build_wheel.py",
    "docs/runner.md",
    "docs/plugins",
]
# Every tracked file under these is in the tarball (no build_ignore pattern catches one by accident).
NEEDED_TREES = ("plugins/", "roles/", "runner/", "docs/", "meta/")


def _source_files():
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                         cwd=REPO, check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f and (REPO / f).is_file()]


@pytest.fixture(scope="module")
def planted_copy(tmp_path_factory):
    """A copy of the checkout's source (tracked and new files, as in the work tree) with every
    planted cache and build path added."""
    if not GALAXY.exists():
        pytest.fail("%s is missing: run `make bootstrap` first" % GALAXY)
    copy = tmp_path_factory.mktemp("i17a") / "zkherd"
    for name in _source_files():
        dest = copy / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest)
    for name in PLANTED:
        path = copy / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("planted\n")
    return copy


@pytest.fixture(scope="module")
def tarball_names(planted_copy, tmp_path_factory):
    out = tmp_path_factory.mktemp("i17a-out")
    env = dict(os.environ, ANSIBLE_CONFIG=str(planted_copy / "ansible.cfg"), LANG="C.UTF-8", LC_ALL="C.UTF-8")
    proc = subprocess.run([str(GALAXY), "collection", "build", "--output-path", str(out), str(planted_copy)],
                          cwd=planted_copy, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tarballs = list(out.glob("zkherd-ops-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    with tarfile.open(tarballs[0]) as tar:
        return {m.name.rstrip("/") for m in tar.getmembers()}


def _under(names, planted):
    """The tarball's names at or under the planted path's top directory (or the file itself)."""
    parts = planted.split("/")
    hits = set()
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        if prefix in names:
            hits.add(prefix)
    return hits


def test_tarball_holds_no_cache_build_output_or_credentials(tarball_names):
    shipped = {p: sorted(_under(tarball_names, p) - _tracked_dirs()) for p in PLANTED}
    shipped = {p: hits for p, hits in shipped.items() if hits}
    assert not shipped, "the collection tarball ships caches, build output or credentials: %s" % shipped
    caches = sorted(n for n in tarball_names
                    if re.search(r"(^|/)(__pycache__|\.[a-z_]*cache|\.hypothesis|[^/]*\.egg-info)(/|$)", n)
                    or n.endswith((".pyc", ".tar.gz", ".whl")))
    assert not caches, caches


def _tracked_dirs():
    """Directories that hold tracked files (tests/, runner/...): shipped on purpose."""
    dirs = set()
    for name in _source_files():
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:depth]))
    return dirs


def test_tarball_holds_what_users_need(tarball_names):
    missing = [n for n in NEEDED if n not in tarball_names]
    assert not missing, "missing from the collection tarball: %s" % missing
    tracked = [n for n in _source_files() if n.startswith(NEEDED_TREES)]
    missing = [n for n in tracked if n not in tarball_names]
    assert not missing, "tracked files missing from the collection tarball: %s" % missing
    assert any(n.startswith("docs/plugins/") and n.endswith(".md") for n in tarball_names)


def test_git_ignores_every_cache_and_build_path(planted_copy):
    subprocess.run(["git", "init", "-q", str(planted_copy)], check=True, capture_output=True)
    proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *PLANTED],
                          cwd=planted_copy, capture_output=True, text=True, check=True)
    assert proc.stdout == "", "not ignored by .gitignore:\n" + proc.stdout


def _make_targets():
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9_-]*)\s*:(?!=)", text, re.M))


def test_every_make_target_named_exists():
    targets = _make_targets()
    texts = [REPO / "ansible.cfg", REPO / "README.md", REPO / "Makefile", *sorted((REPO / "docs").glob("*.md")),
             *sorted(REPO.glob("roles/*/README.md")), *sorted((REPO / "scripts").glob("*.sh"))]
    unknown = []
    for path in texts:
        for target in re.findall(r"`make ([a-z][a-z0-9_-]*)", path.read_text()):
            if target not in targets:
                unknown.append("%s: make %s" % (path.relative_to(REPO), target))
    assert not unknown, "texts name make targets the Makefile lacks: %s" % unknown


def test_readme_and_docs_links_stay_inside_the_repository():
    texts = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), *sorted(REPO.glob("roles/*/README.md"))]
    outside = []
    for path in texts:
        text = path.read_text()
        if re.search(r"\.\./shared\b|shared/seeds", text):
            outside.append("%s: ../shared/seeds" % path.relative_to(REPO))
        for link in re.findall(r"\]\(([^)\s#]+)", text):
            if re.match(r"[a-z]+:", link):
                continue
            target = (path.parent / link).resolve()
            if REPO not in target.parents and target != REPO:
                outside.append("%s: %s (outside the repository)" % (path.relative_to(REPO), link))
            elif not target.exists():
                outside.append("%s: %s (missing)" % (path.relative_to(REPO), link))
    assert not outside, outside
