"""Keep committed notebooks clean and testable: nbval copies, checked outputs, hygiene checks."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import nbformat

from helpers.core import paths
from helpers.core.errors import ConfigError
from helpers.core.run_folder import RUNNER_ENV
from helpers.run import profiles as config

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
RECORDED_DIR = paths.REPO_ROOT / "tests" / "recorded"  # headline metrics nbval runs must match


def is_checked(cell: Any) -> bool:
    """nbval-lax compares only cells that carry the marker."""
    return cell.cell_type == "code" and CHECK_MARK in cell.source


def prepare(
    profile: str,
    out_dir: Path,
    seed: int = 0,
    notebooks_dir: Path = paths.NOTEBOOKS_DIR,
    extra: dict[str, Any] | None = None,
    models: tuple[str, ...] | None = None,
) -> list[Path]:
    """Copies of the notebooks with parameters injected (papermill-style) for one nbval run."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    if out_dir.exists():
        shutil.rmtree(out_dir)
    run_dir = out_dir / "run"
    run_dir.mkdir(parents=True)
    models = tuple(models or config.get_profile(profile).models)
    params = {
        "profile": profile,
        "seed": seed,
        "run_dir": str(run_dir.resolve()),
        "leaderboard": str((out_dir / "leaderboard.csv").resolve()),
        **(extra or {}),
    }
    recorded = RECORDED_DIR / f"{profile}.json"
    if recorded.is_file():
        params.setdefault("recorded", str(recorded))
    written = []
    for nb_path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        declared = _declared(nb_path)
        # Per-model notebooks get one copy per model, so nbval trains and evaluates them all.
        variants = [{"model": m} for m in models] if "model" in declared else [{}]
        for variant in variants:
            nb = load_notebook_node(str(nb_path))  # adds the metadata papermill expects
            given = {k: v for k, v in {**params, **variant}.items() if k in declared}
            nb = parameterize_notebook(nb, given)
            suffix = f"-{variant['model']}" if variant else ""
            target = out_dir / f"{nb_path.stem}{suffix}.ipynb"
            nbformat.write(nb, target)
            written.append(target)
    return written


def _declared(nb_path: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(nb_path)).keys())


def clean(nb: Any, keep_checked: bool = True) -> Any:
    """Strip outputs (but those nbval checks), counts and volatile metadata."""
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type != "code":
            continue
        keep = keep_checked and is_checked(cell) and bool(cell.outputs)
        if not keep:
            cell.outputs = []
        # nbval treats a reference cell without an execution count as unrun.
        cell.execution_count = 1 if keep else None
        for out in cell.get("outputs", []):
            if "execution_count" in out:
                out["execution_count"] = cell.execution_count
    return nb


def sync_checked_outputs(executed_dir: Path, notebooks_dir: Path = paths.NOTEBOOKS_DIR) -> None:
    """Copy outputs of checked cells from executed copies into the committed notebooks."""
    for nb_path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        candidates = sorted(executed_dir.glob(f"{nb_path.stem}*.ipynb"))
        if not candidates:
            continue
        executed = candidates[0]
        src = nbformat.read(executed, as_version=4)
        by_source = {c.source: c for c in src.cells if c.cell_type == "code"}
        nb = nbformat.read(nb_path, as_version=4)
        for cell in nb.cells:
            if is_checked(cell) and cell.source in by_source:
                cell.outputs = by_source[cell.source].outputs
        nbformat.write(clean(nb), nb_path)


def problems(nb_path: Path) -> list[str]:
    """Hygiene problems of a committed notebook (empty list when clean)."""
    nb = nbformat.read(nb_path, as_version=4)
    found = []
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        found.append("kernel name is not python3")
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        found.append("no cell tagged 'parameters'")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.outputs and not is_checked(cell):
            found.append(f"cell {i} has outputs but nbval does not check them")
        if is_checked(cell) and not cell.outputs:
            found.append(
                f"cell {i} is checked by nbval but has no reference output "
                "(refresh with nbtools sync)"
            )
        if cell.cell_type == "code" and cell.execution_count is not None and not cell.outputs:
            found.append(f"cell {i} has an execution count but no output")
    text = nb_path.read_text()
    for marker in (str(paths.REPO_ROOT), "/home/", "/Users/", "/root/", "/tmp/"):
        if marker in text:
            found.append(f"absolute path {marker!r} in the notebook")
    return found


def report_command(run_dir: str | os.PathLike[str]) -> str:
    """The command that makes report.html of a run whose notebook 06 ran by hand, quoted so
    that it pastes back into a shell as it is."""
    folder = Path(run_dir).resolve()
    shown = paths.shown(folder) if folder.is_relative_to(paths.REPO_ROOT.resolve()) else folder
    return shlex.join([".venv/bin/python", "-m", "helpers.run.nbtools", "report", str(shown)])


def report_note(run_dir: str | os.PathLike[str]) -> None:
    """Notebook 06's last line when run by hand, where no report.html is written: the command
    that writes it (./run_all.sh writes it itself, so under it nothing is said)."""
    if not os.environ.get(RUNNER_ENV):
        print(f"report.html is not written by a notebook run by hand: {report_command(run_dir)}")


def main(argv: list[str] | None = None) -> int:
    """CLI: prepare nbval copies, clean notebooks, sync checked outputs, check hygiene."""
    p = argparse.ArgumentParser(prog="python -m helpers.run.nbtools")
    sub = p.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("prepare", help="parameterised copies for nbval")
    pr.add_argument(
        "--profile", default="smoke", help="the profile the copies run in (default smoke)"
    )
    pr.add_argument(
        "--out",
        type=Path,
        default=paths.REPO_ROOT / "build" / "nbval",
        help="folder for the copies, emptied first, with their run folder in it "
        "(default build/nbval)",
    )
    pr.add_argument(
        "--test-data",
        default="",
        metavar="SOURCE",
        help="an external test set the copies also score on (default: none)",
    )
    sub.add_parser("clean", help="strip outputs except nbval-checked cells")
    sy = sub.add_parser("sync", help="copy checked outputs from executed copies")
    sy.add_argument(
        "executed_dir",
        type=Path,
        help="folder of executed notebooks (e.g. a run's notebooks/); required",
    )
    sub.add_parser("check", help="report hygiene problems")
    rep = sub.add_parser(
        "report", help="execute notebook 06 on a run as run_all.sh does: <run>/report.html"
    )
    rep.add_argument("run_dir", nargs="?", default="", help="a run folder (default: the newest)")
    rec = sub.add_parser("record", help="keep a run's headline metrics for nbval to assert")
    rec.add_argument("run_dir", type=Path, help="the finished run folder to read; required")
    rec.add_argument(
        "--profile",
        default="smoke",
        help="the profile it ran, naming tests/recorded/<profile>.json (default smoke)",
    )
    args = p.parse_args(argv)
    if args.cmd == "prepare":
        extra = {"test_data": [str(Path(args.test_data).resolve())]} if args.test_data else None
        for path in prepare(args.profile, args.out, extra=extra):
            print(path)
    elif args.cmd == "clean":
        for nb_path in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb")):
            nbformat.write(clean(nbformat.read(nb_path, as_version=4)), nb_path)
    elif args.cmd == "record":
        from helpers.evaluation.scoring import record_results

        target = RECORDED_DIR / f"{args.profile}.json"
        recorded = record_results(args.run_dir, target)
        print(f"{target}: {', '.join(sorted(recorded['models']))}")
    elif args.cmd == "report":
        from helpers.run.runner import write_report

        try:
            print(f"report: {write_report(args.run_dir)}")
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    elif args.cmd == "sync":
        sync_checked_outputs(args.executed_dir)
    elif args.cmd == "check":
        bad = {p.name: problems(p) for p in sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))}
        bad = {k: v for k, v in bad.items() if v}
        for name, issues in bad.items():
            print(f"{name}: {'; '.join(issues)}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
