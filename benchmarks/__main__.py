"""python -m benchmarks [--quick] [--only NAME,...] [--out DIR]: run, write JSON + markdown."""

from __future__ import annotations

import os

# Before TensorFlow or albumentations load anywhere (children inherit these too).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as helpers sets it (its __init__ says why)

import argparse
import importlib
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import BENCHMARKS
from benchmarks.common import Context, Skip, finish_facts, machine_facts
from benchmarks.levers import parse_levers
from benchmarks.recipe import parse_settings
from benchmarks.report import render, write
from benchmarks.scale import parse_sizes
from helpers.core import paths
from helpers.core.run_folder import RunFolder
from helpers.run import profiles as config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; see benchmarks/RESULTS.md for what each benchmark measures."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny inputs (64-image demo zip at 48 px, 1-2 steps): proves the scripts "
        "work in a few minutes; the figures mean nothing",
    )
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all of them)",
    )
    p.add_argument(
        "--out", default="", help="output folder (default: a new reports/benchmarks/<timestamp>/)"
    )
    p.add_argument(
        "--run-dir",
        action="append",
        default=[],
        metavar="RUN",
        help="end_to_end: tabulate this existing run folder (repeatable; default: none)",
    )
    p.add_argument(
        "--run-e2e",
        action="store_true",
        help="end_to_end: run ./run_all.sh for each --e2e-profiles profile first",
    )
    p.add_argument(
        "--e2e-profiles", default="smoke,cpu", help="profiles for end_to_end (default smoke,cpu)"
    )
    p.add_argument(
        "--work",
        default="",
        help="scratch folder for generated data (default: a temporary folder, removed at the end)",
    )
    p.add_argument(
        "--scale-sizes",
        default="",
        metavar="N,N,...",
        help="scale: records per demo zip (default 4000,32000,128000; --quick 64,256)",
    )
    p.add_argument(
        "--levers-data",
        default="",
        metavar="SOURCE",
        help="levers: FER-2013 (zip or folder) to compare recipe changes on (full mode needs it; "
        "default: none)",
    )
    p.add_argument(
        "--levers-minutes",
        type=float,
        default=10.0,
        help="levers: training minutes per lever (default 10)",
    )
    p.add_argument(
        "--levers",
        default="",
        metavar="NAME,...",
        help="levers: which to train (default all; two with --quick)",
    )
    p.add_argument(
        "--recipe-data",
        default="",
        metavar="SOURCE",
        help="recipe: the faces the profile trains on (zip or folder; full mode needs it, "
        "unless --work already holds the prepared run folder; default: none)",
    )
    p.add_argument(
        "--recipe-profile",
        default="fer2013-gpu",
        help="recipe: the profile whose models are trained and scored (default fer2013-gpu)",
    )
    p.add_argument(
        "--recipe-minutes",
        type=float,
        default=None,
        help="recipe: training minutes per model (default: the profile's budget)",
    )
    p.add_argument(
        "--recipe-set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="recipe: a training setting over the profile's (VALUE as JSON, e.g. "
        'weight_decay=0.001 or \'mixing={"mode": "mixup", "alpha": 0.2}\'); repeat it '
        "for several (default: none)",
    )
    p.add_argument(
        "--framing-data",
        default="",
        metavar="SOURCE",
        help="framing: faces with a test split (e.g. fer2013.zip; full mode needs it; default: "
        "none)",
    )
    p.add_argument(
        "--framing-model",
        default="",
        metavar="MODEL",
        help="framing: a .keras model trained on --framing-data (full mode needs it; "
        "default: none)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the generated data, splits and training (default 0)",
    )
    return p.parse_args(argv)


def selected(only: str) -> list[str]:
    """Benchmarks to run, in the package's order; unknown names are an error."""
    if not only.strip():
        return list(BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    return [n for n in BENCHMARKS if n in names]


def run_one(name: str, ctx: Context) -> dict[str, Any]:
    """One benchmark's result with status ok, skipped (and why) or failed (and the error)."""
    ctx.log(f"{name} ...")
    start = time.perf_counter()
    try:
        result = importlib.import_module(f"benchmarks.{name}").run(ctx)
        result["status"] = "ok"
    except Skip as skip:
        result = {"status": "skipped", "reason": str(skip)}
    except Exception as exc:  # one broken benchmark must not lose the others' figures
        traceback.print_exc(file=sys.stderr)
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = time.perf_counter() - start
    ctx.log(f"{name}: {result['status']} in {result['seconds']:.1f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, writing results after each; exit 1 if any failed."""
    args = parse_args(argv)
    try:
        names = selected(args.only)
        profiles = tuple(
            config.get_profile(p.strip()).name for p in args.e2e_profiles.split(",") if p.strip()
        )
        scale_sizes = parse_sizes(args.scale_sizes) if args.scale_sizes else None
        levers = parse_levers(args.levers) if args.levers.strip() else ()
        if not args.levers_minutes > 0:
            raise ValueError(f"--levers-minutes must be positive, got {args.levers_minutes}")
        recipe_profile = config.get_profile(args.recipe_profile).name
        if args.recipe_minutes is not None and not args.recipe_minutes > 0:
            raise ValueError(f"--recipe-minutes must be positive, got {args.recipe_minutes}")
        recipe_settings = parse_settings(args.recipe_set, recipe_profile)
        framing_model = (
            Path(args.framing_model).expanduser().resolve() if args.framing_model else None
        )
        if framing_model is not None and not framing_model.is_file():
            raise ValueError(f"--framing-model {framing_model}: not found")
    except Exception as exc:  # ValueError, ConfigError: a usage error
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = (
        Path(args.out).expanduser().resolve()
        if args.out
        else RunFolder.new(paths.REPORTS_DIR / "benchmarks").root
    )
    work = (
        Path(args.work).expanduser().resolve()
        if args.work
        else Path(tempfile.mkdtemp(prefix="benchmarks-"))
    )
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        quick=args.quick,
        out=out,
        work=work,
        seed=args.seed,
        run_dirs=[Path(d).expanduser().resolve() for d in args.run_dir],
        run_e2e=args.run_e2e,
        e2e_profiles=profiles,
        scale_sizes=scale_sizes,
        levers_data=Path(args.levers_data).expanduser().resolve() if args.levers_data else None,
        levers_minutes=args.levers_minutes,
        levers=levers,
        recipe_data=Path(args.recipe_data).expanduser().resolve() if args.recipe_data else None,
        recipe_profile=recipe_profile,
        recipe_minutes=args.recipe_minutes,
        recipe_settings=recipe_settings,
        framing_data=Path(args.framing_data).expanduser().resolve() if args.framing_data else None,
        framing_model=framing_model,
    )
    report: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "command": " ".join(
            ["python -m benchmarks", shlex.join(argv if argv is not None else sys.argv[1:])]
        ).strip(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "benchmarks": {},
    }
    try:
        for name in names:
            report["benchmarks"][name] = run_one(name, ctx)
            write(report, out)  # after each: an interrupted run keeps what it measured
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    finish_facts(report["machine"])
    json_path, md_path = write(report, out)
    print(render(report))
    ctx.log(f"wrote {json_path} and {md_path}")
    return 1 if any(b["status"] == "failed" for b in report["benchmarks"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
