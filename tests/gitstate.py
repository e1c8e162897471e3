"""The user's side of a git repository for the Python tests (the twin of tests/gitrepo in Rust):
repositories made for a test, and ``UserState``, the index bytes, HEAD, branches, stash and
files captured before an operation and compared after it. Git work of the plugin must never
change any of them unless the user asked for exactly that.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "The User",
    "GIT_AUTHOR_EMAIL": "user@example.com",
    "GIT_COMMITTER_NAME": "The User",
    "GIT_COMMITTER_EMAIL": "user@example.com",
}


def git(cwd: Path | str, *args: str, check: bool = True) -> str:
    """Runs git as the user would, in ``cwd``; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(IDENTITY)
    out = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=60)
    if check and out.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {cwd}: {out.stderr}")
    return out.stdout


def numbered(n: int) -> str:
    return "".join(f"line {i}\n" for i in range(1, n + 1))


def make_repo(root: Path | str, files: dict[str, str] | None = None) -> Path:
    """A repository at ``root`` (created if needed) with one commit of ``files`` (default:
    ``README`` and ``src/lib.rs`` of 20 numbered lines), branch ``main``, the user's identity
    in its config."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", IDENTITY["GIT_AUTHOR_NAME"])
    git(root, "config", "user.email", IDENTITY["GIT_AUTHOR_EMAIL"])
    files = files if files is not None else {"README": "read me\n", "src/lib.rs": numbered(20)}
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def _files(top: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel_dir = os.path.relpath(dirpath, top)
        if rel_dir == ".git" or rel_dir.startswith(".git" + os.sep):
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if not (rel_dir == "." and d == ".git")]
        for name in filenames:
            p = Path(dirpath) / name
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            else:
                out[rel] = ("file", p.read_bytes(), p.stat().st_mode)
    return out


@dataclass
class UserState:
    index: bytes | None
    head_file: bytes
    head: str
    branches: list[str]
    stash: str
    files: dict[str, tuple] = field(repr=False)

    @classmethod
    def capture(cls, top: Path | str) -> "UserState":
        top = Path(top)
        git_dir = Path(git(top, "rev-parse", "--absolute-git-dir").strip())
        index = git_dir / "index"
        branches = git(top, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads")
        return cls(
            index=index.read_bytes() if index.exists() else None,
            head_file=(git_dir / "HEAD").read_bytes(),
            head=git(top, "rev-parse", "-q", "--verify", "HEAD", check=False),
            branches=branches.splitlines(),
            stash=git(top, "stash", "list") + git(top, "for-each-ref", "refs/stash"),
            files=_files(top),
        )

    def without_task_branches(self) -> "UserState":
        """Without the branches of worktree tasks (``claude-tasks/…``), which come and go."""
        return replace(self, branches=[b for b in self.branches if "claude-tasks/" not in b])

    def assert_same(self, after: "UserState", changed: tuple[str, ...] = ()) -> None:
        """Fails naming the difference if anything but the files under ``changed`` differs."""
        assert self.index == after.index, "the user's index changed"
        assert self.head_file == after.head_file, "HEAD changed"
        assert self.head == after.head, "HEAD's commit changed"
        assert self.branches == after.branches, f"branches changed: {self.branches} -> {after.branches}"
        assert self.stash == after.stash, "the stash changed"
        for k in sorted(set(self.files) | set(after.files)):
            if any(k == c or k.startswith(c.rstrip("/") + "/") for c in changed):
                continue
            assert self.files.get(k) == after.files.get(k), f"{k} changed, and it was not meant to"
