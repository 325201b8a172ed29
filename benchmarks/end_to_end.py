"""End to end: wall time of ./run_all.sh per profile, stage by stage, from the run's manifest."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT, Context, Skip, child_env, pct, table
from helpers.core import paths
from helpers.core.errors import DataError

TITLE = "End to end: ./run_all.sh stage by stage"
RUN_TIMEOUT_S = 4 * 3600


def read_stages(run_dir: Path) -> dict[str, Any]:
    """Profile, models and per-stage {status, seconds} recorded in <run>/manifest.json."""
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        raise DataError(path, "no manifest.json: not a run folder made by ./run_all.sh")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        stages = manifest.get("stages") or {}
        profile = manifest["profile"]["name"]
        rows = {
            name: {"status": str(s.get("status")), "seconds": float(s.get("seconds") or 0.0)}
            for name, s in stages.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(path, f"not a readable run manifest ({exc!r})") from exc
    total = sum(r["seconds"] for r in rows.values())
    return {
        "run_dir": str(run_dir),
        "profile": profile,
        "models": manifest.get("models"),
        "created": manifest.get("created"),
        "stages": rows,
        "stages_total_s": total,
        "all_ok": bool(rows) and all(r["status"] == "ok" for r in rows.values()),
    }


def latest_run(profile: str, base: Path = paths.REPORTS_DIR) -> Path | None:
    """The newest run folder of a profile whose stages all finished, if any."""
    found = None
    for manifest in sorted(base.glob("*/manifest.json")):
        if not re.match(r"\d{8}-\d{6}", manifest.parent.name):
            continue
        try:
            run = read_stages(manifest.parent)
        except DataError:
            continue
        if run["profile"] == profile and run["all_ok"]:
            found = manifest.parent
    return found


def run_profile(ctx: Context, profile: str) -> tuple[Path, float]:
    """./run_all.sh --profile P into a fresh folder under the output; (run folder, wall s)."""
    run_dir = ctx.out / "e2e" / profile
    log = ctx.out / "e2e" / f"{profile}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    ctx.log(f"end_to_end: ./run_all.sh --profile {profile} (log: {log})")
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(
            [str(REPO_ROOT / "run_all.sh"), "--profile", profile, "--run-dir", str(run_dir)],
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT_S,
        )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"./run_all.sh --profile {profile} exited with {done.returncode}; see {log}"
        )
    return run_dir, seconds


def _runs(ctx: Context) -> list[tuple[Path, float | None]]:
    """Run folders to tabulate: given, run now, or (full mode) the latest of each profile."""
    if ctx.run_dirs:
        return [(Path(d), None) for d in ctx.run_dirs]
    if ctx.run_e2e:
        return [run_profile(ctx, p) for p in ctx.e2e_profiles]
    if ctx.quick:
        raise Skip(
            "quick mode tabulates only a given run: pass --run-dir RUN, or --run-e2e "
            "to run ./run_all.sh"
        )
    found = [(d, None) for p in ctx.e2e_profiles if (d := latest_run(p)) is not None]
    if not found:
        raise Skip(
            f"no finished run of profile(s) {', '.join(ctx.e2e_profiles)} under "
            f"{paths.REPORTS_DIR}; pass --run-dir RUN or --run-e2e"
        )
    return found


def run(ctx: Context) -> dict[str, Any]:
    """One table per run: each stage's seconds and share of the total."""
    results: dict[str, Any] = {"runs": []}
    tables = []
    for run_dir, wall in _runs(ctx):
        run = read_stages(run_dir)
        run["outside_wall_s"] = wall
        results["runs"].append(run)
        total = run["stages_total_s"]
        rows = [
            [name, s["status"], s["seconds"], pct(s["seconds"] / total if total else None)]
            for name, s in run["stages"].items()
        ]
        rows.append(["total (stages)", "ok" if run["all_ok"] else "incomplete", total, pct(1.0)])
        if wall is not None:
            rows.append(
                ["wall, ./run_all.sh as a whole", "", wall, pct(wall / total if total else None)]
            )
        tables.append(
            table(
                f"profile {run['profile']}: {run_dir}",
                ["stage", "status", "seconds", "share"],
                rows,
            )
        )
    return {
        "title": TITLE,
        "params": {
            "source": "run_all.sh" if ctx.run_e2e and not ctx.run_dirs else "run folders",
            "profiles": [r["profile"] for r in results["runs"]],
        },
        "results": results,
        "comparisons": [],
        "tables": tables,
        "notes": [
            "Stage seconds come from the run's own manifest.json (papermill execution "
            "plus HTML export per notebook); the outside wall time, when this script ran "
            "the profile, adds the environment check and demo data generation."
        ],
    }
