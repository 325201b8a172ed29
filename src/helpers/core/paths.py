"""Where the project keeps things, known to every layer (a source checkout: src/helpers/core/)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = REPO_ROOT / "data"
DEMO_DIR = DATA_DIR / "demo"
REPORTS_DIR = REPO_ROOT / "reports"
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


JUNK_FILES = frozenset({"thumbs.db", "desktop.ini"})


def is_junk(parts: tuple[str, ...]) -> bool:
    """OS droppings (macOS resource forks `._name` and `__MACOSX/`, .DS_Store, Thumbs.db,
    anything under a hidden folder) are skipped, not counted: the dataset readers and the
    predictor judge a path's parts (below the folder given) by this one rule."""
    name = parts[-1]
    return (
        "__MACOSX" in parts
        or any(p.startswith(".") and p not in (".", "..") for p in parts)
        or name.lower() in JUNK_FILES
    )


def shown(path: str | os.PathLike) -> str:
    """A path as a report shows it: relative to the project when inside it, so no machine's
    own folders (/home/..., /work/...) reach a reader."""
    resolved = Path(path).resolve()
    try:
        return resolved.relative_to(REPO_ROOT.resolve()).as_posix()
    except ValueError:
        return resolved.name if resolved.is_absolute() else str(path)


def not_found(path: str | os.PathLike) -> str:
    """The problem of a missing input path: a relative one is read from the working folder (a
    notebook's kernel runs in notebooks/), so say which folder that is and where this
    repository's data/ is from there; one found from the repository's root is named."""
    given = Path(path).expanduser()
    if given.is_absolute():
        return "not found"
    here = Path.cwd().resolve()
    said = f"not found in {here} (the working folder, where a relative path is read from"
    if here != REPO_ROOT.resolve() and REPO_ROOT.resolve() in here.parents:
        up = Path(os.path.relpath(REPO_ROOT, here))
        said += f"; from there this repository's data/ is {(up / 'data').as_posix()}/"
        if (REPO_ROOT / given).exists():
            said += f": {(up / given).as_posix()!r}"
    return said + ")"


def data_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a data file, or of a folder's file names and sizes (cheap, stable): the same
    fingerprint ./run_all.sh records in manifest.json, so runs of either kind compare."""
    import hashlib

    root = Path(path)
    if root.is_file():
        return file_sha256(root)
    digest = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            digest.update(f"{p.relative_to(root)}\0{p.stat().st_size}\n".encode())
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's contents, read a megabyte at a time."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# What a run's code is: tracked changes elsewhere (README.md, tests/recorded/) do not make it
# differ, and a notebook differs only where its code cells do (source_version).
CODE_PATHS = (
    "src",
    "scripts",
    "run_all.sh",
    "run_tests.sh",
    "pyproject.toml",
    "requirements*.txt",
)


def source_version() -> dict[str, str | bool | None]:
    """The commit of this checkout and whether its code differs from it, so a run made from
    uncommitted code says so; None for each where git or the clone is missing.

    Code is a tracked change under src/ or scripts/, in run_all.sh, run_tests.sh,
    pyproject.toml or requirements*.txt, a notebook whose code cells differ from the commit's
    (new outputs or metadata from saving it in Jupyter do not count), or a new file under src/
    or notebooks/. git never takes its index lock here, so a run does not get in the way of
    the user's own git commands."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "--no-optional-locks", "-C", str(REPO_ROOT), *args],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout

    head = (git("rev-parse", "HEAD", "--show-toplevel") or "").splitlines()
    if len(head) != 2:  # one line each: the top folder's path may hold spaces
        return {"git_commit": None, "git_dirty": None}
    commit, top = head
    changed = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    notebooks = git("diff", "--name-only", "--no-renames", "HEAD", "--", "notebooks")
    added = git("ls-files", "--others", "--exclude-standard", "--", "src", "notebooks")
    if changed is None or notebooks is None or added is None:
        return {"git_commit": commit, "git_dirty": None}
    code_changed = any(
        not _same_code_cells(Path(top) / name, git("show", f"HEAD:{name}"))
        for name in notebooks.splitlines()
        if name
    )
    dirty = bool(changed.strip() or added.strip()) or code_changed
    return {"git_commit": commit, "git_dirty": dirty}


def _same_code_cells(path: Path, committed: str | None) -> bool:
    """Whether a notebook's code cells read as in its committed text; a file that is no
    notebook (or is gone) compares as text."""
    import json

    def code(text: str) -> list[str] | None:
        try:
            cells = json.loads(text)["cells"]
            return [
                "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                for c in cells
                if c.get("cell_type") == "code"
            ]
        except (ValueError, KeyError, TypeError):
            return None

    try:
        current = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if committed is None:
        return False
    ours, theirs = code(current), code(committed)
    return ours == theirs if ours is not None and theirs is not None else current == committed
