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


def source_version() -> dict[str, str | bool | None]:
    """The commit of this checkout and whether its code differs from it (a tracked file changed,
    or a new file under src/ or notebooks/), so a run made from uncommitted code says so; None
    for each where git or the clone is missing."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO_ROOT), *args],
                capture_output=True,
                text=True,
                check=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout

    commit = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no") if commit else None
    added = git("ls-files", "--others", "--exclude-standard", "--", "src", "notebooks")
    dirty = None if changed is None or added is None else bool(changed.strip() or added.strip())
    return {"git_commit": commit.strip() if commit else None, "git_dirty": dirty}
