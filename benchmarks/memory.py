"""Memory: peak RSS of train() on the balanced set vs the coursework's everything-as-float32.

Every figure is the peak resident memory (VmHWM) of a fresh child process, so nothing the
parent holds is counted:

    python -m benchmarks.memory --child '{"kind": "train", ...}'   (run by the parent)
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import (
    COURSEWORK_BYTES_PER_PIXEL,
    Context,
    comparison,
    coursework_load,
    gb,
    human_bytes,
    memory_now,
    print_child_result,
    run_child,
    table,
)

TITLE = "Memory: peak RSS while training"
TARGET_BYTES = 4e9
CHILD_TIMEOUT_S = 1800


# --------------------------------------------------------------------------- child process


def _child_train(spec: dict[str, Any]) -> dict[str, Any]:
    """A few steps of the real train() on a saved table; peak memory of this process."""
    from helpers.core.records import load_records
    from helpers.train.config import TrainConfig
    from helpers.train.fit import train

    rows = load_records(spec["table"])
    before = memory_now()
    cfg = TrainConfig(
        model=spec["model"],
        image_size=spec["size"],
        channels=3,
        epochs=1,
        batch_size=spec["batch"],
        max_steps_per_epoch=spec["steps"],
        cache=spec["cache"],
        seed=spec["seed"],
        verbose=0,
    )
    train(
        cfg, rows, None, spec["out"], augment_settings={"online": True, "config": {}}, resume=False
    )
    return {**memory_now(), "rss_before_training_bytes": before["rss_bytes"], "rows": len(rows)}


def _child_coursework(spec: dict[str, Any]) -> dict[str, Any]:
    """The coursework's loader holding every listed image as float32."""
    paths = Path(spec["paths_file"]).read_text().splitlines()
    array = coursework_load(paths, spec["size"])
    return {**memory_now(), "images": len(array), "array_bytes": int(array.nbytes)}


def _child_python_floor(spec: dict[str, Any]) -> dict[str, Any]:
    """The same imports as the coursework child and nothing else."""
    import cv2  # noqa: F401  (loaded by the coursework child too)

    return memory_now()


CHILDREN = {
    "train": _child_train,
    "coursework": _child_coursework,
    "python_floor": _child_python_floor,
}


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of a child process: one measurement, printed as one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--child", required=True, help="JSON spec written by the parent")
    spec = json.loads(parser.parse_args(argv).child)
    print_child_result(CHILDREN[spec["kind"]](spec))
    return 0


# --------------------------------------------------------------------------- parent


def balanced_table(records: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """The balanced training table as notebook 03 makes it: upsampled copies, augmented online."""
    from helpers.core.labels import N_EXPRESSIONS
    from helpers.data.augment import balanced_training_table, plan_balance, planned_copies

    train = records.assign(split="train")
    plan = plan_balance(train, "upsample", target_per_class=rows // N_EXPRESSIONS, seed=seed)
    return balanced_training_table(train, plan, planned_copies(plan, train))


def run(ctx: Context) -> dict[str, Any]:
    """Children: train() streamed/disk and on a tiny table (floor); coursework load and floor."""
    from helpers.core.records import save_records

    scale = ctx.scale
    size, batch, steps, model = (
        scale.memory_size,
        scale.memory_batch,
        scale.memory_steps,
        scale.memory_model,
    )
    work = ctx.work / "memory"
    work.mkdir(parents=True, exist_ok=True)
    balanced = balanced_table(ctx.records(), scale.memory_rows, ctx.seed)
    tiny = balanced.sample(n=min(len(balanced), batch * steps), random_state=ctx.seed)
    for name, rows in (("balanced", balanced), ("tiny", tiny)):
        save_records(rows.reset_index(drop=True), work / f"{name}.parquet")
    common = {
        "kind": "train",
        "model": model,
        "size": size,
        "batch": batch,
        "steps": steps,
        "seed": ctx.seed,
    }

    def child(label: str, spec: dict[str, Any]) -> dict[str, Any]:
        """One measurement in a fresh process, its log beside the tables."""
        ctx.log(f"memory: {label}")
        return run_child("benchmarks.memory", spec, work / f"{label}.log", CHILD_TIMEOUT_S)

    n_cw = min(scale.coursework_images, len(ctx.records()))
    paths_file = work / "coursework_paths.txt"
    paths_file.write_text("\n".join(ctx.extracted_images()[:n_cw]))
    specs = {
        "floor": {
            **common,
            "table": str(work / "tiny.parquet"),
            "cache": "memory",
            "out": str(work / "run-floor"),
        }
    }
    for cache in scale.memory_caches:
        specs[f"cache_{cache}"] = {
            **common,
            "table": str(work / "balanced.parquet"),
            "cache": cache,
            "out": str(work / f"run-{cache}"),
        }
    specs["python_floor"] = {"kind": "python_floor"}
    specs["coursework"] = {"kind": "coursework", "size": size, "paths_file": str(paths_file)}
    # Each peak is per process, so children may overlap; only --quick lets them, since a full
    # run's children need GBs each and must not push one another into swap.
    with ThreadPoolExecutor(2 if ctx.quick else 1) as pool:
        futures = {label: pool.submit(child, label, spec) for label, spec in specs.items()}
        runs = {label: future.result() for label, future in futures.items()}

    pixels = size * size * 3
    per_image = (
        runs["coursework"]["peak_rss_bytes"] - runs["python_floor"]["peak_rss_bytes"]
    ) / n_cw
    n_rows = len(balanced)
    cw_load = runs["python_floor"]["peak_rss_bytes"] + per_image * n_rows
    cw_train = runs["floor"]["peak_rss_bytes"] + per_image * n_rows
    streamed = runs["cache_none"]["peak_rss_bytes"]
    unique = int(balanced["image"].nunique())
    results = {
        "runs": runs,
        "balanced_rows": n_rows,
        "unique_images": unique,
        "image_size": size,
        "coursework_images_measured": n_cw,
        "coursework_bytes_per_image_measured": per_image,
        "coursework_bytes_per_image_theory": pixels * COURSEWORK_BYTES_PER_PIXEL,
        "coursework_uint8_list_bytes_per_image": pixels,
        "coursework_load_peak_extrapolated_bytes": cw_load,
        "coursework_train_peak_estimate_bytes": cw_train,
        "project_streamed_peak_bytes": streamed,
        "disk_cache_file_bytes": unique * pixels,
    }
    rows = [
        [
            "project train(), tiny table in memory (TF + model floor)",
            len(tiny),
            gb(runs["floor"]["peak_rss_bytes"]),
            gb(runs["floor"]["rss_before_training_bytes"]),
        ]
    ]
    for cache in scale.memory_caches:
        r = runs[f"cache_{cache}"]
        rows.append(
            [
                f"project train(), balanced set, cache={cache}",
                n_rows,
                gb(r["peak_rss_bytes"]),
                gb(r["rss_before_training_bytes"]),
            ]
        )
    rows += [
        [
            "python + numpy + cv2 (coursework floor)",
            0,
            gb(runs["python_floor"]["peak_rss_bytes"]),
            "",
        ],
        [
            f"coursework load as float32 (measured on {n_cw:,})",
            n_cw,
            gb(runs["coursework"]["peak_rss_bytes"]),
            "",
        ],
        [f"coursework load, extrapolated to {n_rows:,}", n_rows, gb(cw_load), ""],
        [
            f"coursework training, estimate for {n_rows:,} (load + TF/model floor)",
            n_rows,
            gb(cw_train),
            "",
        ],
    ]
    return {
        "title": TITLE,
        "params": {
            "model": model,
            "image_size": size,
            "batch_size": batch,
            "steps": steps,
            "balanced_rows": n_rows,
            "unique_images": unique,
            "caches": list(scale.memory_caches),
            "measure": "VmHWM (peak resident set) of a fresh child process",
        },
        "results": results,
        "comparisons": [
            comparison(
                f"peak RSS, {n_rows:,} rows at {size} px",
                streamed,
                cw_train,
                "bytes",
                higher_is_better=False,
                target=f"project < {gb(TARGET_BYTES):g} GB",
                met=bool(streamed < TARGET_BYTES),
            )
        ],
        "tables": [
            table(
                "Peak resident memory (GB)",
                ["process", "rows / images", "peak RSS (GB)", "RSS before training (GB)"],
                rows,
            )
        ],
        "notes": [
            f"Coursework scaling: N x {size} x {size} x 3 x 4 bytes = "
            f"{pixels * COURSEWORK_BYTES_PER_PIXEL:,} bytes per image as float32, plus the uint8 "
            f"list ({pixels:,} per image) alive while np.array copies it; measured "
            f"{per_image:,.0f} bytes per image.",
            f"The balanced set is {n_rows:,} rows over {unique:,} distinct images (upsampled "
            "copies augmented online, as notebook 03 makes it); a streamed run's memory does "
            "not grow with either.",
            "A disk cache is a memory-mapped file; its pages count in RSS once touched but are "
            f"page cache the OS can drop. File size bound: {human_bytes(unique * pixels)}.",
        ],
    }


if __name__ == "__main__":
    sys.exit(child_main())
