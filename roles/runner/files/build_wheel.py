"""Build the zkherd wheel from the collection's own source, on the controller, once per source.

    build_wheel.py SOURCE_ROOT CACHE_DIR [pip options...]

Copies the parts of the collection the package needs (pyproject.toml, README.md, runner/zkherd,
plugins/module_utils/common) into a new temporary folder, so that the source tree (possibly an
installed, read-only collection) is never written to, and runs `pip wheel --no-deps` there with
SOURCE_DATE_EPOCH set: the same source gives a byte-identical wheel, so the hosts' copy of it only
changes when the source does. The wheel is kept in CACHE_DIR under the digest of those parts: a
later run with the same source builds nothing and answers at once (a build costs seconds and, without
--no-index, the package index). The few most recently used wheels stay; older ones are removed.
Extra arguments go to pip (for example --no-index --find-links DIR for a controller without a
package index: the wheel folder must then hold the build backend, setuptools>=77).
Prints one JSON line: {"wheel": PATH, "version": VERSION, "built": true if this run built it}.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PARTS = ["pyproject.toml", "README.md", "runner/zkherd", "plugins/module_utils/common"]
# 1980-01-01, the earliest time a zip file can hold.
EPOCH = "315532800"
# Wheels kept in the cache (other checkouts, other versions of this one).
KEEP = 5


def copy_source(source, tree):
    """The parts into *tree*; their digest (paths and contents: all that goes into the wheel)."""
    digest = hashlib.sha256()
    for part in PARTS:
        src, dest = source / part, tree / part
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(src, dest)
    # File modes go into the wheel: make them independent of the checkout's umask.
    for path in sorted(tree.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
        if path.is_file():
            digest.update(b"%s\0%d\0" % (str(path.relative_to(tree)).encode(), path.stat().st_size))
            digest.update(path.read_bytes())
    return digest.hexdigest()[:20]


def cached(entry):
    wheels = sorted(entry.glob("zkherd-*.whl"))
    return wheels[0] if len(wheels) == 1 else None


def prune(cache):
    entries = sorted((e for e in cache.iterdir() if e.is_dir() and not e.name.startswith(".")),
                     key=lambda e: e.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)


def main(argv):
    if len(argv) < 3:
        sys.exit("usage: build_wheel.py SOURCE_ROOT CACHE_DIR [pip options...]")
    source, cache = Path(argv[1]).resolve(), Path(argv[2]).expanduser().resolve()
    for part in PARTS:
        if not (source / part).exists():
            sys.exit("%s is not the zkherd collection source: %s is missing" % (source, part))
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        sys.exit("cannot make the wheel cache %s: %s" % (cache, exc))
    # In the cache's file system, so that a finished build moves into place in one rename.
    tmpdir = Path(tempfile.mkdtemp(prefix=".build-", dir=str(cache)))
    try:
        digest = copy_source(source, tmpdir / "src")
        entry = cache / digest
        wheel, built = cached(entry), False
        if wheel is None:
            dist = build(tmpdir, argv[3:])
            if entry.exists() and cached(entry) is None:  # a broken entry (no single wheel); not one just made
                shutil.rmtree(entry, ignore_errors=True)
            try:
                dist.rename(entry)
                built = True
            except OSError:  # another run built the same source meanwhile: same bytes, keep its copy
                pass
            wheel = cached(entry)
        os.utime(entry)  # recently used: kept by prune()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    prune(cache)
    print(json.dumps({"wheel": str(wheel), "version": wheel.name.split("-")[1], "built": built}))


def build(tmpdir, pip_args):
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    dist = tmpdir / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-input", "--no-deps", "--wheel-dir",
           str(dist), *pip_args, str(tmpdir / "src")]
    done = subprocess.run(cmd, env=env, cwd=str(tmpdir), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit("building the zkherd wheel failed (%s):\n%s%s" % (" ".join(cmd), done.stdout, done.stderr))
    wheels = sorted(dist.glob("zkherd-*.whl"))
    if len(wheels) != 1:
        sys.exit("expected one zkherd wheel, found %s" % [w.name for w in wheels])
    return dist


if __name__ == "__main__":
    main(sys.argv)
