"""What a launch records about where it came from: the git commit and diff, the installed packages, versions.

Written into the run's tags and artifacts by `rlx.launch` (through `rlx.track.store`).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    import email.message


@dataclass
class GitState:
    commit: str
    dirty: bool
    diff: str  # `git diff HEAD` plus the names of untracked files; empty when clean


def git_state(cwd: str | os.PathLike | None = None) -> GitState | None:
    """The working tree's commit and whether it is dirty; None outside a git repository."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    dirty = bool(status.strip())
    diff = ""
    if dirty:
        try:
            diff = git("diff", "HEAD")
        except (OSError, subprocess.SubprocessError):
            diff = ""
        untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
        if untracked:
            diff += "\n# untracked files (not in the diff):\n" + "".join(f"#   {u}\n" for u in untracked)
    return GitState(commit, dirty, diff)


def installed_packages() -> str:
    """`pip freeze`-style list of the installed distributions (works in venvs without pip)."""
    from importlib import metadata

    seen: dict[str, str] = {}
    for dist in metadata.distributions():
        # at runtime an email.message.Message subclass; typeshed's PackageMetadata protocol lacks .get()
        name = cast("email.message.Message", dist.metadata).get("Name")
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(seen[k] for k in sorted(seen)) + "\n"


def package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
