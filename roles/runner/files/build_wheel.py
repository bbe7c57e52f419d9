"""Build the zkherd wheel from the collection's own source, on the controller.

    build_wheel.py SOURCE_ROOT [pip options...]

Copies the parts of the collection the package needs (pyproject.toml, README.md, runner/zkherd,
plugins/module_utils/common) into a new temporary folder, so that the source tree (possibly an
installed, read-only collection) is never written to, and runs `pip wheel --no-deps` there with
SOURCE_DATE_EPOCH set: the same source gives a byte-identical wheel, so the hosts' copy of it only
changes when the source does. Extra arguments go to pip (for example --no-index --find-links DIR
for a controller without a package index: the wheel folder must then hold the build backend,
setuptools>=77). Prints one JSON line: {"wheel": PATH, "tmpdir": DIR, "version": VERSION}.
"""

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


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: build_wheel.py SOURCE_ROOT [pip options...]")
    source = Path(argv[1]).resolve()
    for part in PARTS:
        if not (source / part).exists():
            sys.exit("%s is not the zkherd collection source: %s is missing" % (source, part))
    tmpdir = Path(tempfile.mkdtemp(prefix="zkherd-wheel-"))
    tree = tmpdir / "src"
    for part in PARTS:
        src, dest = source / part, tree / part
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copyfile(src, dest)
    # File modes go into the wheel: make them independent of the checkout's umask.
    for path in tree.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    env = dict(os.environ, SOURCE_DATE_EPOCH=EPOCH, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-input", "--no-deps", "--wheel-dir",
           str(tmpdir / "dist"), *argv[2:], str(tree)]
    done = subprocess.run(cmd, env=env, cwd=str(tmpdir), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        shutil.rmtree(tmpdir, ignore_errors=True)
        sys.exit("building the zkherd wheel failed (%s):\n%s%s" % (" ".join(cmd), done.stdout, done.stderr))
    wheels = sorted((tmpdir / "dist").glob("zkherd-*.whl"))
    if len(wheels) != 1:
        shutil.rmtree(tmpdir, ignore_errors=True)
        sys.exit("expected one zkherd wheel, found %s" % [w.name for w in wheels])
    version = wheels[0].name.split("-")[1]
    print(json.dumps({"wheel": str(wheels[0]), "tmpdir": str(tmpdir), "version": version}))


if __name__ == "__main__":
    main(sys.argv)
