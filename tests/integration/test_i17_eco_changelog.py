"""Changelog fragments (issue 17): scripts/fragment_check.sh on a fresh clone, and
scripts/changelog.sh picking up a new fragment."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "fragment_check.sh"


def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def make_repo(tmp_path):
    """A repository like ours with one commit that touched changelogs/, cloned as CI clones it."""
    origin = tmp_path / "origin"
    (origin / "plugins" / "modules").mkdir(parents=True)
    (origin / "changelogs" / "fragments").mkdir(parents=True)
    (origin / "plugins" / "modules" / "znode.py").write_text("x = 1\n")
    (origin / "changelogs" / "fragments" / "first.yml").write_text("minor_changes:\n  - first\n")
    git(origin, "init", "-q", "-b", "main")
    git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
    return clone


def run_check(clone):
    env = dict(os.environ, FRAGMENT_BASE="origin/main")
    return subprocess.run([str(CHECK), str(clone)], capture_output=True, text=True, env=env, check=False)


def commit(clone, message):
    git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def test_fresh_clone_change_to_plugins_needs_a_fragment(tmp_path):
    clone = make_repo(tmp_path)
    assert run_check(clone).returncode == 0  # nothing since the last changelog commit

    (clone / "plugins" / "modules" / "znode.py").write_text("x = 2\n")
    commit(clone, "change a module")
    result = run_check(clone)
    assert result.returncode == 1, result.stdout
    assert "changelog fragment missing" in result.stderr
    assert "plugins/modules/znode.py" in result.stderr
    assert "Traceback" not in result.stderr

    (clone / "changelogs" / "fragments" / "change.yml").write_text("bugfixes:\n  - fixed\n")
    assert run_check(clone).returncode == 0  # an uncommitted new fragment counts
    commit(clone, "its fragment")
    # the newest commit touched changelogs/: on a fresh clone of main nothing is left to check
    assert run_check(clone).returncode == 0


def test_branch_is_compared_with_its_merge_base(tmp_path):
    clone = make_repo(tmp_path)
    git(clone, "checkout", "-qb", "topic")
    (clone / "changelogs" / "fragments" / "topic.yml").write_text("minor_changes:\n  - topic\n")
    commit(clone, "fragment first")
    (clone / "plugins" / "modules" / "znode.py").write_text("x = 3\n")
    commit(clone, "then the code")
    # the last changelog commit is older than the code, but the branch's range holds both
    assert run_check(clone).returncode == 0
    git(clone, "tag", "v0.1.0")
    (clone / "plugins" / "modules" / "znode.py").write_text("x = 4\n")
    # not the merge base (HEAD is on a branch), but a working-tree change after the range's fragment
    assert run_check(clone).returncode == 0


def test_a_shallow_clone_says_it_cannot_check(tmp_path):
    """A depth-1 clone's only commit shows every file as added: the fallback range held the tree's
    fragments and the check passed without looking. It says so, and checks what is not committed."""
    origin = make_repo(tmp_path)
    (origin / "plugins" / "modules" / "znode.py").write_text("x = 2\n")
    commit(origin, "a change without a fragment")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "file://%s" % origin, str(shallow)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "FRAGMENT_BASE"}
    result = subprocess.run([str(CHECK), str(shallow)], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0 and "only uncommitted changes can be checked" in result.stderr, result
    (shallow / "plugins" / "modules" / "znode.py").write_text("x = 3\n")  # uncommitted: that is checked
    result = subprocess.run([str(CHECK), str(shallow)], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1 and "plugins/modules/znode.py" in result.stderr, result


def test_a_deep_enough_shallow_clone_is_still_checked(tmp_path):
    """A shallow clone that holds the last commit that touched changelogs/ (CI's fetch depth 20 or 50)
    is checked as a full one (review: the first fix for depth 1 skipped every shallow clone)."""
    origin = make_repo(tmp_path)  # 1: code and a fragment
    (origin / "plugins" / "modules" / "znode.py").write_text("x = 1 \n")
    commit(origin, "pad")  # 2
    (origin / "changelogs" / "fragments" / "second.yml").write_text("minor_changes:\n  - second\n")
    commit(origin, "a fragment")  # 3
    (origin / "plugins" / "modules" / "znode.py").write_text("x = 2\n")
    commit(origin, "a change without a fragment")  # 4
    (origin / "README").write_text("r\n")
    commit(origin, "docs")  # 5
    env = {k: v for k, v in os.environ.items() if k != "FRAGMENT_BASE"}
    for depth in ("4", "3"):  # the fragment's commit inside the clone, or its oldest
        shallow = tmp_path / ("shallow" + depth)
        subprocess.run(["git", "clone", "-q", "--depth", depth, "file://%s" % origin, str(shallow)], check=True)
        result = subprocess.run([str(CHECK), str(shallow)], capture_output=True, text=True, env=env, check=False)
        assert result.returncode == 1 and "plugins/modules/znode.py" in result.stderr, (depth, result)


def test_generated_changelog_picks_up_new_fragments(tmp_path):
    """scripts/changelog.sh on a copy of the repository: a new fragment's text appears in CHANGELOG.md."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("galaxy.yml", "meta", "plugins", "roles", "changelogs", "scripts", "CHANGELOG.md"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, copy / name)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    (copy / "changelogs" / "fragments" / "i17-test.yml").write_text(
        "bugfixes:\n  - \"A fragment added by test_i17_eco_changelog.\"\n")
    # one run (about 8 s: antsibull-changelog lists the plugins with ansible-doc)
    result = subprocess.run([str(copy / "scripts" / "changelog.sh"), "--check"], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1 and "make changelog" in result.stderr
    text = (copy / "CHANGELOG.md.new").read_text()
    assert "A fragment added by test\\_i17\\_eco\\_changelog" in text
    assert "## v0\\.1\\.0" in text and "Not released yet" in text
