"""Scale: what each stage costs per record as the data set grows, and what 290,000 images take.

    python -m benchmarks --only scale [--scale-sizes 4000,32000,128000]

For each size the demo generator writes an AffectNet-layout zip (96 px in full mode), and the
stages run on it as the notebooks run them, into one run folder per size. Each stage runs in a
fresh child process, so its peak memory is its own (--quick runs one size's stages in one child
and resets the peak between them):

    python -m benchmarks.scale --child '{"stages": ["ingest"], ...}'   (run by the parent)

Per stage and size: wall-clock and CPU seconds of the stage's own work (interpreter start and
imports left out), peak resident memory and what the stage left on disk, as cost per record,
and the growth exponent between consecutive sizes, log(v2 / v1) / log(n2 / n1): 1 is linear,
2 quadratic. Above 1.2 in CPU time, memory or disk a stage is flagged super-linear; CPU time is
the process's own (all its threads), so another program on the machine does not move it as it
moves the wall clock. The two largest sizes' figures, carried on to 290,000
records (projected()), are the projection for full AffectNet.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Context,
    gb,
    human_bytes,
    memory_now,
    pct,
    print_child_result,
    run_child,
    table,
)

TITLE = "Scale: cost per record of every stage, and the projection to full AffectNet"
AFFECTNET_IMAGES = 290_000
SUPER_LINEAR = 1.2  # growth exponent above which a stage is flagged
MODEL = "custom_cnn"
PROFILE = "cpu"  # the training settings (custom CNN at 48 px) and the EDA sample
BALANCE_PROFILE = "gpu"  # the full-data run's balancing, scaled to each size (balance_target)
NEAR_DISTANCE = 4  # notebooks 02 and 03's near_distance
CHILD_TIMEOUT_S = 6 * 3600
# Noise floors: below them a growth exponent is shown but never flagged.
MIN_SECONDS = 1.0
MIN_BYTES = 32e6
# (key, what the stage runs), in pipeline order; each key is a function of this module.
STAGES: tuple[tuple[str, str], ...] = (
    ("ingest", "01 ingestion: datasets.read_source, records saved"),
    (
        "eda",
        "02 EDA: class balance, valence/arousal, image statistics, every image hashed, "
        "duplicates, leakage, figures",
    ),
    (
        "split",
        "03 split and balance: image hashes, duplicates, assign_splits by duplicate groups, "
        "plan_balance, training table",
    ),
    ("cache", "decoded cache fill: make_dataset over the training table, one pass"),
    ("train", "04 one training epoch: fit.train, custom CNN (validation and model file included)"),
    ("predict", "05 predictions: scoring.evaluate_model (predict_table, bootstrap CIs) on test"),
    ("report", "06 report: comparison table, figures over every prediction, leaderboard row"),
)
STAGE_NAMES = tuple(key for key, _ in STAGES)
# Modules a stage needs, imported before its clock starts (TensorFlow alone takes seconds).
STAGE_IMPORTS: dict[str, tuple[str, ...]] = {
    "ingest": ("helpers.data.datasets", "helpers.core.records"),
    "eda": ("helpers.data.eda", "helpers.reporting.plots", "helpers.run.profiles"),
    "split": ("helpers.data.eda", "helpers.data.splits", "helpers.data.augment"),
    "cache": ("helpers.train.pipeline", "helpers.train.fit"),
    "train": ("helpers.train.fit", "helpers.run.profiles"),
    "predict": ("helpers.evaluation.scoring", "helpers.models.saving"),
    "report": ("helpers.evaluation.comparison", "helpers.reporting.plots"),
}


# --------------------------------------------------------------------------- growth (pure)


def growth_exponents(sizes: Sequence[float], values: Sequence[float]) -> list[float | None]:
    """log(v2 / v1) / log(n2 / n1) between each size and the next; None where undefined.

    One entry fewer than there are sizes. 1 means the cost grows in proportion to the records
    (linear), 2 with their square; a value that is zero or not finite has no exponent.
    """
    if len(sizes) != len(values):
        raise ValueError(f"{len(sizes)} sizes but {len(values)} values")
    out: list[float | None] = []
    for i in range(len(sizes) - 1):
        (n1, n2), (v1, v2) = sizes[i : i + 2], values[i : i + 2]
        usable = all(math.isfinite(x) and x > 0 for x in (n1, n2, v1, v2)) and n1 != n2
        out.append(math.log(v2 / v1) / math.log(n2 / n1) if usable else None)
    return out


def growth_label(exponent: float | None, value: float = math.inf, floor: float = 0.0) -> str:
    """'super-linear' above SUPER_LINEAR, 'linear' or 'sub-linear'; 'below noise floor' when the
    larger figure is under `floor`, where timer and allocator noise set the exponent."""
    if exponent is None or not math.isfinite(exponent):
        return ""
    if value < floor:
        return "below noise floor"
    if exponent > SUPER_LINEAR:
        return "super-linear"
    return "linear" if exponent > 0.8 else "sub-linear"


def projected(
    sizes: Sequence[float], values: Sequence[float], target: float, floor: float = 0.0
) -> tuple[float, str]:
    """(value at `target` records, how it was carried there) from the two largest sizes.

    Super-linear growth (last exponent above 1, on a value at or above `floor`, the noise
    floor) keeps its exponent: v * (target / n)^e. Else the cost is taken as linear with a
    fixed part: the largest size's value plus the marginal cost per record between the two
    largest sizes for each record beyond it (a fixed cost is not multiplied); a value that did
    not grow stays as it is. One size: proportional to records.
    """
    if len(sizes) != len(values) or not sizes:
        raise ValueError(f"{len(sizes)} sizes but {len(values)} values")
    n, v = float(sizes[-1]), float(values[-1])
    if not math.isfinite(v) or v <= 0:
        return 0.0, "none"
    if len(sizes) == 1:
        return v * target / n, "proportional"
    exponent = growth_exponents(sizes[-2:], values[-2:])[0]
    if exponent is not None and exponent > 1 and v >= floor:
        return v * (target / n) ** exponent, f"n^{exponent:.2f}"
    marginal = (v - float(values[-2])) / (n - float(sizes[-2]))
    if not math.isfinite(marginal) or marginal <= 0:
        return v, "flat"
    return v + marginal * (target - n), "linear"


def memory_growth(series: dict[str, list[float]]) -> list[float]:
    """Peak RSS above the process before the stage's work, per size: what the stage itself held."""
    return [p - b for p, b in zip(series["peak_rss"], series["rss_before"], strict=True)]


def project_stages(
    sizes: Sequence[int],
    stages: dict[str, dict[str, list[float]]],
    target: int = AFFECTNET_IMAGES,
    repeats: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Every stage's seconds, peak memory and disk at `target` records, and the totals.

    stages: per stage "seconds" (wall clock), "cpu_seconds", "rss_before", "peak_rss" and
    "disk" per size (memory grows from rss_before, the process before the stage's work).
    repeats: how many times a stage runs (training: epochs), multiplying its times. Totals:
    hours summed (wall clock and CPU), the largest peak, disk summed.
    """
    repeats = repeats or {}
    out: dict[str, Any] = {"target": target, "stages": {}}
    for name, m in stages.items():
        seconds, how_time = projected(sizes, m["seconds"], target, MIN_SECONDS)
        cpu, _ = projected(sizes, m["cpu_seconds"], target, MIN_SECONDS)
        memory, how_memory = projected(sizes, memory_growth(m), target, MIN_BYTES)
        disk, how_disk = projected(sizes, m["disk"], target, MIN_BYTES)
        out["stages"][name] = {
            "seconds": seconds * repeats.get(name, 1),
            "cpu_seconds": cpu * repeats.get(name, 1),
            "peak_rss_bytes": m["rss_before"][-1] + memory,
            "disk_bytes": disk,
            "growth": {"time": how_time, "memory": how_memory, "disk": how_disk},
            "repeats": repeats.get(name, 1),
        }
    rows = out["stages"].values()
    out["hours"] = sum(r["seconds"] for r in rows) / 3600
    out["cpu_hours"] = sum(r["cpu_seconds"] for r in rows) / 3600
    out["peak_rss_bytes"] = max((r["peak_rss_bytes"] for r in rows), default=0.0)
    out["disk_bytes"] = sum(r["disk_bytes"] for r in rows)
    return out


# --------------------------------------------------------------------------- child process


def _reset_peak() -> None:
    """Start a new peak-RSS measurement (Linux: writing 5 to clear_refs resets VmHWM)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def _cpu_seconds() -> float:
    """CPU time of this process so far, every thread, user and system."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _folder_bytes(folder: Path) -> int:
    """Bytes of every file under a folder (0 if it does not exist)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


@contextlib.contextmanager
def _part(parts: dict[str, float], name: str) -> Iterator[None]:
    """Seconds of one step of a stage, so the table can say where a stage's time goes."""
    start = time.perf_counter()
    try:
        yield
    finally:
        parts[name] = time.perf_counter() - start


def _save_figures(figures: dict[str, Any], folder: Path) -> int:
    """Each figure (None: the plot had nothing to show) as a PNG, as the report embeds them."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = 0
    for name, figure in figures.items():
        if figure is not None:
            figure.savefig(folder / f"{name}.png", format="png", dpi=100)
            saved += 1
    return saved


def _ingest(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    """Notebook 01: the zip read into the records table, checked and saved."""
    from helpers.core import records
    from helpers.data import datasets

    result = datasets.read_source(spec["zip"], progress=False)
    records.validate_records(result.records)
    records.save_records(result.records, run.records)
    result.summary().to_csv(run.ingest_report, index=False)
    return {"rows": len(result.records)}


def _eda(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    """Notebook 02: its tables (every image hashed for duplicates) and its whole-table figures."""
    from helpers.core import records
    from helpers.data import eda
    from helpers.reporting import plots
    from helpers.run import profiles

    seed, parts = spec["seed"], {}
    table = records.load_records(run.records)
    out = run.eda_dir
    out.mkdir(exist_ok=True)
    with _part(parts, "statistics"):
        dist = eda.class_distribution(table)
        dist.to_csv(out / "class_distribution.csv", index=False)
        eda.valence_arousal_summary(table).to_csv(out / "valence_arousal.csv", index=False)
        sample = profiles.resolve(PROFILE)["eda_sample"]
        stats = eda.image_stats(table, sample=sample, seed=seed, progress=False)
        stats.to_csv(out / "image_stats.csv", index=False)
    with _part(parts, "image_hashes"):
        hashes = eda.image_hashes(table, progress=False)
    with _part(parts, "find_duplicates"):
        pairs = eda.find_duplicates(hashes, max_distance=NEAR_DISTANCE)
        pairs.to_csv(out / "duplicates.csv", index=False)
    with _part(parts, "leakage_check"):
        leaks = eda.leakage_check(table, hashes, max_distance=NEAR_DISTANCE, pairs=pairs)
        leaks.to_csv(out / "leakage.csv", index=False)
    with _part(parts, "figures"):
        _save_figures(
            {
                "class_distribution": plots.plot_class_distribution(dist),
                "va_scatter": plots.plot_va_scatter(table, seed=seed),
                "image_stats": plots.plot_image_stats(stats),
            },
            out,
        )
    return {"rows": len(table), "parts": parts, "duplicate_pairs": len(pairs)}


def balance_target(n: int) -> int:
    """The gpu profile's images per class, scaled from full AffectNet to n records, so each size
    balances as the full run would (on AffectNet every class already has more: no copies)."""
    from helpers.run import profiles

    target = profiles.get_profile(BALANCE_PROFILE).balance_target or 1
    return max(1, round(target * n / AFFECTNET_IMAGES))


def _split(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    """Notebook 03: hashes, duplicate groups kept in one split, balancing, the training table."""
    from helpers.core import records
    from helpers.data import augment as aug
    from helpers.data import eda, splits
    from helpers.run import profiles

    params, seed, parts = profiles.resolve(BALANCE_PROFILE), spec["seed"], {}
    table = records.as_read(records.load_records(run.records))  # the data's own split, as 03
    with _part(parts, "image_hashes"):
        hashes = eda.image_hashes(table, progress=False)
        table = eda.drop_unreadable(table, hashes)
    with _part(parts, "find_duplicates"):
        pairs = eda.find_duplicates(hashes, max_distance=NEAR_DISTANCE)
    with _part(parts, "assign_splits"):
        split_table = splits.assign_splits(
            table,
            val_share=params["val_share"],
            test_share=params["test_share"],
            seed=seed,
            groups=splits.duplicate_groups(table, pairs),
        )
        splits.save_split(split_table, run)  # splits.parquet and records.parquet's split, as 03
    with _part(parts, "balance"):
        train = split_table[split_table["split"] == "train"]
        plan = aug.plan_balance(
            train, strategy=params["balance"], target_per_class=spec["balance_target"], seed=seed
        )
        manifest = aug.planned_copies(plan, split_table)
        train_table = aug.balanced_training_table(split_table, plan, manifest)
        records.save_records(train_table, run.train_table)
        aug.AugmentSettings(
            mode="online",
            config=aug.AugmentConfig.from_dict(params["augment"]),
            balance=params["balance"],
            target_per_class=plan.target_per_class,
            class_weights=plan.class_weights,
            seed=seed,
        ).write(run.augment_settings)
    return {
        "rows": len(table),
        "parts": parts,
        "train_rows": len(train_table),
        "copies": len(manifest),
    }


def _cache(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    """One pass of the training pipeline that fills the decoded cache, chosen as train() does
    (memory up to cache_memory_limit_gb, else a memory-mapped file)."""
    from helpers.train import fit, pipeline
    from helpers.train.config import TrainConfig

    inputs = fit.load_training_inputs(run)
    size = spec["train_px"]
    need = sum(pipeline.cache_bytes(t, size, 3) for t in (inputs.train, inputs.val) if len(t))
    limit = TrainConfig(model=MODEL).cache_memory_limit_gb * (1 << 30)
    path = run.cache_dir(MODEL) / "train.npy"
    cache: bool | Path = True if need <= limit else path
    dataset = pipeline.make_dataset(
        inputs.train,
        image_size=size,
        channels=3,
        batch_size=spec["batch"],
        training=True,
        seed=spec["seed"],
        cache=cache,
    )
    images = pipeline.benchmark(dataset)["images"]
    disk = _folder_bytes(path.parent)
    del dataset
    shutil.rmtree(path.parent, ignore_errors=True)  # as train() removes its cache at the end
    return {
        "rows": len(inputs.train),
        "images": images,
        "mode": "memory" if cache is True else "disk",
        "cache_bytes": pipeline.cache_bytes(inputs.train, size, 3),
        "disk_bytes": disk,
    }


def _train(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    """Notebook 04 for one epoch: the cpu profile's custom CNN on the training table."""
    from helpers.run import profiles
    from helpers.train import fit, pipeline

    inputs = fit.load_training_inputs(run)
    cfg = profiles.train_config(
        PROFILE,
        MODEL,
        seed=spec["seed"],
        heads=pipeline.heads_with_targets(inputs.train),
        epochs=1,
        image_size=spec["train_px"],
        batch_size=spec["batch"],
        verbose=0,
    )
    result = fit.train(
        cfg, inputs.train, inputs.val, run, augment_settings=inputs.augment, resume=False
    )
    return {
        "rows": len(inputs.train),
        "val_rows": len(inputs.val),
        "image_size": cfg.image_size,
        "cache": result.card.get("data", {}).get("cache"),
        "train_images_per_s": result.card.get("images_per_s"),
    }


def _predict(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    """Notebook 05's predictions and metrics file: the test split through the trained model."""
    from helpers.core import records
    from helpers.evaluation import predictions, scoring
    from helpers.models.saving import load_trained

    net = load_trained(run.model_path(MODEL))
    split_table = records.load_records(run.splits)
    test = split_table[split_table["split"] == "test"].reset_index(drop=True)
    present = sorted(split_table["expression"].unique())
    scores, preds = scoring.evaluate_model(
        net, MODEL, test, n_boot=spec["n_boot"], seed=spec["seed"], classes=present
    )
    predictions.save_predictions(preds, run.predictions_path(MODEL))
    scoring.write_metrics(scores, run.metrics_path(MODEL))
    return {"rows": len(test), "n_boot": spec["n_boot"]}


def _report(spec: dict[str, Any], run: Any) -> dict[str, Any]:
    """Notebooks 05-06's figures over every prediction, the comparison and its leaderboard row."""
    from helpers.evaluation import comparison, predictions
    from helpers.evaluation.leaderboard import append_leaderboard
    from helpers.reporting import plots
    from helpers.train.card import read_history

    table = comparison.comparison_table(run)
    preds = predictions.load_predictions(run.predictions_path(MODEL))
    labels = (comparison.load_metrics(run)[MODEL].get("expression") or {}).get("labels", [])
    saved = _save_figures(
        {
            "metric_comparison": plots.plot_metric_comparison(table),
            "confusion_grid": plots.plot_confusion_grid(comparison.confusion_matrices(run)),
            "roc_pr": plots.plot_roc_pr(preds, labels),
            "va_predictions": plots.plot_va_predictions(preds),
            "confident_mistakes": plots.plot_confident_mistakes(preds, n=12),
            "learning_curves": plots.plot_learning_curves(
                read_history(run.history_path(MODEL)), title=MODEL
            ),
        },
        run / "report_figures",
    )
    comparison.summary_text(table)
    append_leaderboard(run, table, PROFILE, "scale-benchmark", path=run / "leaderboard.csv")
    return {"rows": len(preds), "figures": saved}


STAGE_FUNCTIONS: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]] = {
    "ingest": _ingest,
    "eda": _eda,
    "split": _split,
    "cache": _cache,
    "train": _train,
    "predict": _predict,
    "report": _report,
}


def run_stages(spec: dict[str, Any]) -> dict[str, Any]:
    """The listed stages in order on one run folder; time, peak memory and disk of each."""
    from helpers.core.run_folder import RunFolder

    run = RunFolder(spec["run"])
    run.root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    for name in spec["stages"]:
        for module in STAGE_IMPORTS[name]:
            importlib.import_module(module)
        gc.collect()
        _reset_peak()
        before_disk = _folder_bytes(run.root)
        before = memory_now()
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        facts = STAGE_FUNCTIONS[name](spec, run)
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
        after = memory_now()
        disk = facts.pop("disk_bytes", None)
        out[name] = {
            **facts,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "rss_before_bytes": before["rss_bytes"],
            "peak_rss_bytes": after["peak_rss_bytes"],
            "disk_bytes": disk if disk is not None else _folder_bytes(run.root) - before_disk,
        }
    return out


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of a child process: its stages' figures, printed as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("--child", required=True, help="JSON spec written by the parent")
    print_child_result(run_stages(json.loads(parser.parse_args(argv).child)))
    return 0


# --------------------------------------------------------------------------- parent


def parse_sizes(text: str) -> tuple[int, ...]:
    """'4000,32000' -> (4000, 32000): at least two distinct sizes of 32 records or more."""
    try:
        sizes = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    except ValueError:
        raise ValueError(
            f"--scale-sizes takes record counts such as 4000,32000; got {text!r}"
        ) from None
    if len(sizes) < 2 or sizes[0] < 32:
        raise ValueError(
            f"--scale-sizes needs two or more distinct sizes of at least 32 records; got {text!r}"
        )
    return sizes


def _demo_zip(ctx: Context, n: int) -> tuple[Path, float]:
    """The demo zip of n records at this mode's side (made once per --work folder), and the
    seconds it took to generate (0 when it was there)."""
    from helpers.data.synthetic import generate_zip

    px = ctx.scale.scale_demo_px
    path = ctx.work / "scale" / f"demo_n{n}_px{px}_seed{ctx.seed}.zip"
    if path.exists():
        return path, 0.0
    ctx.log(f"scale: generating {n:,} demo records at {px} px")
    summary = generate_zip(path, n=n, seed=ctx.seed, size=px, progress=False)
    return path, float(summary["seconds"])


def measure_size(ctx: Context, n: int) -> dict[str, Any]:
    """Every stage on n records: one child per stage (one for all of them with --quick)."""
    scale = ctx.scale
    zip_path, generated_s = _demo_zip(ctx, n)
    folder = ctx.work / "scale" / f"n{n}"
    shutil.rmtree(folder, ignore_errors=True)  # a fresh run folder: disk figures are the stage's
    folder.mkdir(parents=True)
    spec = {
        "zip": str(zip_path),
        "run": str(folder / "run"),
        "seed": ctx.seed,
        "train_px": scale.scale_train_px,
        "batch": scale.batch_size,
        "n_boot": scale.scale_n_boot,
        "balance_target": balance_target(n),
    }
    groups = [[s] for s in STAGE_NAMES] if scale.scale_child_per_stage else [list(STAGE_NAMES)]
    stages: dict[str, Any] = {}
    for group in groups:
        ctx.log(f"scale: {n:,} records, {', '.join(group)}")
        log = folder / f"{'-'.join(group) if len(group) == 1 else 'stages'}.log"
        stages.update(
            run_child("benchmarks.scale", {**spec, "stages": group}, log, CHILD_TIMEOUT_S)
        )
    return {
        "records": n,
        "zip_bytes": zip_path.stat().st_size,
        "generate_seconds": generated_s,
        "balance_target": spec["balance_target"],
        "stages": stages,
    }


def _series(per_size: list[dict[str, Any]], stage: str) -> dict[str, list[float]]:
    """One stage's figures across the sizes, in size order."""
    rows = [size["stages"][stage] for size in per_size]
    return {
        "seconds": [float(r["seconds"]) for r in rows],
        "cpu_seconds": [float(r["cpu_seconds"]) for r in rows],
        "rss_before": [float(r["rss_before_bytes"]) for r in rows],
        "peak_rss": [float(r["peak_rss_bytes"]) for r in rows],
        "disk": [float(r["disk_bytes"]) for r in rows],
    }


def part_rows(per_size: list[dict[str, Any]]) -> list[list[Any]]:
    """Where the stages that time their steps (02, 03) spend it: a row per step and size."""
    rows = []
    for stage in STAGE_NAMES:
        for size in per_size:
            facts = size["stages"][stage]
            for part, seconds in facts.get("parts", {}).items():
                share = pct(seconds / facts["seconds"] if facts["seconds"] > 0 else None)
                rows.append([stage, size["records"], part, seconds, share])
    return rows


def cost_rows(sizes: Sequence[int], per_size: list[dict[str, Any]]) -> list[list[Any]]:
    """The cost-per-record table: a row per stage and size, exponents from the previous size."""
    rows = []
    for stage in STAGE_NAMES:
        m = _series(per_size, stage)
        growth = memory_growth(m)
        exponents = {
            "time": [None, *growth_exponents(sizes, m["seconds"])],
            "cpu": [None, *growth_exponents(sizes, m["cpu_seconds"])],
            "memory": [None, *growth_exponents(sizes, growth)],
            "disk": [None, *growth_exponents(sizes, m["disk"])],
        }
        for i, n in enumerate(sizes):
            labels = {
                growth_label(exponents["cpu"][i], m["cpu_seconds"][i], MIN_SECONDS),
                growth_label(exponents["memory"][i], growth[i], MIN_BYTES),
                growth_label(exponents["disk"][i], m["disk"][i], MIN_BYTES),
            }
            wall = growth_label(exponents["time"][i], m["seconds"][i], MIN_SECONDS)
            if "super-linear" in labels:
                flag = "super-linear"
            elif wall == "super-linear":
                flag = "wall clock only (load or waiting?)"
            else:
                flag = ""
            rows.append(
                [
                    stage,
                    n,
                    m["seconds"][i],
                    m["seconds"][i] / n,
                    m["cpu_seconds"][i] / n,
                    gb(m["peak_rss"][i]),
                    growth[i] / n,
                    m["disk"][i] / n,
                    exponents["time"][i],
                    exponents["cpu"][i],
                    exponents["memory"][i],
                    exponents["disk"][i],
                    flag,
                ]
            )
    return rows


COST_COLUMNS = [
    "stage",
    "records",
    "seconds",
    "s/record",
    "CPU s/record",
    "peak RSS (GB)",
    "memory bytes/record",
    "disk bytes/record",
    "exponent: time",
    "exponent: CPU",
    "exponent: memory",
    "exponent: disk",
    "flag",
]


def run(ctx: Context) -> dict[str, Any]:
    """Every size (--scale-sizes or the mode's), the cost table and the 290,000-image projection."""
    from helpers.run import profiles

    scale = ctx.scale
    sizes = tuple(ctx.scale_sizes or scale.scale_sizes)
    # Sizes are independent: --quick runs them side by side; a full run one at a time, so
    # children measured for memory and time do not compete.
    with ThreadPoolExecutor(2 if ctx.quick else 1) as pool:
        per_size = list(pool.map(lambda n: measure_size(ctx, n), sizes))
    epochs = int(profiles.resolve(PROFILE, model=MODEL)["epochs"])
    series = {stage: _series(per_size, stage) for stage in STAGE_NAMES}
    projection = project_stages(sizes, series)
    run_projection = project_stages(sizes, series, repeats={"train": epochs})
    flagged = sorted({row[0] for row in cost_rows(sizes, per_size) if row[-1] == "super-linear"})
    zip_per_record = per_size[-1]["zip_bytes"] / sizes[-1]
    projection_rows = [
        [
            stage,
            p["seconds"] / 3600,
            p["cpu_seconds"] / 3600,
            gb(p["peak_rss_bytes"]),
            gb(p["disk_bytes"]),
            p["growth"]["time"],
            p["growth"]["memory"],
            p["growth"]["disk"],
        ]
        for stage, p in projection["stages"].items()
    ]
    for label, total in (
        ("all stages, one epoch", projection),
        (f"all stages, {epochs} epochs (the {PROFILE} profile's)", run_projection),
    ):
        projection_rows.append(
            [
                label,
                total["hours"],
                total["cpu_hours"],
                gb(total["peak_rss_bytes"]),
                gb(total["disk_bytes"]),
                "",
                "",
                "",
            ]
        )
    ctx.log(
        f"scale: projected for {AFFECTNET_IMAGES:,} images: {projection['hours']:.2f} h with one "
        f"epoch ({run_projection['hours']:.2f} h with {epochs}), peak RSS "
        f"{human_bytes(projection['peak_rss_bytes'])}, disk {human_bytes(projection['disk_bytes'])}"
    )
    return {
        "title": TITLE,
        "params": {
            "sizes": list(sizes),
            "demo_px": scale.scale_demo_px,
            "model": MODEL,
            "train_px": scale.scale_train_px,
            "batch_size": scale.batch_size,
            "n_boot": scale.scale_n_boot,
            "children": "one per stage" if scale.scale_child_per_stage else "one per size",
            "measure": "wall-clock and CPU seconds of the stage's work; VmHWM of its process "
            "(memory/record: above the process before the stage); bytes it left in the run "
            "folder",
        },
        "results": {
            "sizes": per_size,
            "exponents": {
                stage: {
                    "time": growth_exponents(sizes, m["seconds"]),
                    "cpu": growth_exponents(sizes, m["cpu_seconds"]),
                    "memory": growth_exponents(sizes, memory_growth(m)),
                    "disk": growth_exponents(sizes, m["disk"]),
                }
                for stage, m in series.items()
            },
            "super_linear": flagged,
            "projection": projection,
            "projection_run": {**run_projection, "epochs": epochs},
            "zip_bytes_per_record": zip_per_record,
        },
        "comparisons": [],
        "tables": [
            table(
                "Cost per record (exponent: growth from the size above; 1 linear, 2 quadratic)",
                COST_COLUMNS,
                cost_rows(sizes, per_size),
            ),
            table(
                "Where 02 and 03 spend their time",
                ["stage", "records", "step", "seconds", "share of the stage"],
                part_rows(per_size),
            ),
            table(
                f"Projected for {AFFECTNET_IMAGES:,} images on this machine, these settings "
                "(growth: linear = the largest size plus the marginal cost per record; n^e = "
                "super-linear above the noise floor, kept; flat = did not grow)",
                [
                    "stage",
                    "hours",
                    "CPU hours",
                    "peak RSS (GB)",
                    "disk (GB)",
                    "time",
                    "memory",
                    "disk",
                ],
                projection_rows,
            ),
        ],
        "notes": [
            *(f"{key}: {text}" for key, text in STAGES),
            f"Super-linear (exponent above {SUPER_LINEAR} in CPU time, memory or disk, on a "
            f"figure above its noise floor: {MIN_SECONDS:g} s, {human_bytes(MIN_BYTES)}): "
            f"{', '.join(flagged) if flagged else 'none'}. 'wall clock only': the wall time "
            "grew faster than the CPU time, which other programs on the machine (see the load "
            "averages) or waiting on the disk explain; rerun on a quiet machine.",
            f"Input: the demo zip holds {zip_per_record:,.0f} bytes per record at "
            f"{scale.scale_demo_px} px; a real AffectNet zip holds larger photos, so ingestion "
            "and hashing, which read or decode every image, cost more per record there.",
            f"Balancing: upsample to the {BALANCE_PROFILE} profile's target scaled to each size "
            f"({balance_target(AFFECTNET_IMAGES):,} per class at {AFFECTNET_IMAGES:,}), so each "
            "size balances as the full run would; the training table is the train split.",
            "train includes the first epoch's decoding into the cache (train() builds its own "
            "pipeline), validation, and saving and reloading the best model; cache measures the "
            "decoding pass alone. The projection's training hours are for the custom CNN at "
            f"{scale.scale_train_px} px on this machine; see docs/scaling.md for other models "
            "and a GPU.",
        ],
    }


if __name__ == "__main__":
    sys.exit(child_main())
