"""``convlint check --changed-since REF``: which files git says changed since a ref.

A pull request touches a few models of a zoo of hundreds; its run needs to check only the pairs
whose files changed. Changed means: listed by ``git diff --name-only REF`` (committed, staged
or not), or not tracked by git at all (untracked, or ignored: git cannot say whether an ignored
file changed, so it is checked; the result cache makes that cheap when it did not).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from convlint.analyzers import rules as R
from convlint.analyzers.errors import ConvlintError

GIT_TIMEOUT = 120.0  # seconds; a diff of a large repository, never an endless wait


def since(folder: str | Path, ref: str) -> Callable[[str], bool]:
    """A predicate ``changed(path)`` for files and folders (a SavedModel), computed once from git
    run in ``folder``. Not a git repository, no git, or an unknown ref: ConvlintError."""
    top = Path(_git(folder, "rev-parse", "--show-toplevel", what="find the repository",
                    message=f"--changed-since: {folder} is not in a git repository",
                    hint="run in a git checkout, or drop --changed-since").strip())
    if ref.startswith("-"):
        raise _error(f"--changed-since: {ref!r} is not a git ref")
    _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", what=f"find {ref!r}",
         message=f"--changed-since: unknown git ref {ref!r}",
         hint="name a commit, branch or tag; in CI fetch it first (actions/checkout with "
         "fetch-depth: 0, or git fetch origin main)")
    diff = _names(_git(top, "diff", "--name-only", "--no-renames", "-z", ref, "--", what="diff"))
    untracked = _names(_git(top, "ls-files", "--others", "--exclude-standard", "-z",
                            what="list files"))
    tracked = _names(_git(top, "ls-files", "-z", what="list files"))
    moved = diff | untracked

    def changed(path: str) -> bool:
        p = Path(path).absolute()
        try:
            rel = (p.parent.resolve() / p.name).relative_to(top.resolve()).as_posix()
        except ValueError:
            return True  # outside the repository: git cannot say, so check it
        if rel in moved:
            return True
        if p.is_dir():
            under = rel.rstrip("/") + "/"
            return (any(n.startswith(under) for n in moved)
                    or not any(n.startswith(under) for n in tracked))
        return rel not in tracked

    return changed


def _names(out: str) -> set[str]:
    return {n for n in out.split("\0") if n}


def _git(cwd: str | Path, *args: str, what: str, hint: str | None = None,
         message: str | None = None) -> str:
    try:
        p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                           timeout=GIT_TIMEOUT, errors="surrogateescape")
    except FileNotFoundError:
        raise _error("--changed-since needs git, which is not installed (or not on PATH)") from None
    except subprocess.TimeoutExpired:
        raise _error(f"--changed-since: git did not {what} within {GIT_TIMEOUT:g} s") from None
    except OSError as e:
        raise _error(f"--changed-since: cannot run git in {cwd}: {e.strerror or e}") from None
    if p.returncode != 0:
        detail = " ".join(p.stderr.split())[:300]
        raise _error(message or f"--changed-since: git could not {what} in {cwd}"
                     + (f": {detail}" if detail else ""), hint=hint)
    return p.stdout


def _error(message: str, hint: str | None = None) -> ConvlintError:
    return ConvlintError(message, rule=R.BAD_ARGUMENTS.code, hint=hint)
