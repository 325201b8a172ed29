"""Ingestion: the demo zip to a records table, read in place vs unzip-then-np.load (coursework)."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import Context, comparison, median, per_second, table, timed
from helpers.core.labels import N_EXPRESSIONS
from helpers.core.landmarks import N_POINTS

TITLE = "Ingestion: AffectNet-layout zip to records"
TARGET_RATIO = 5.0
_IMAGES = "Dataset/Dataset/images"
_ANNOTATIONS = "Dataset/Dataset/annotations"


def _load(path: Path) -> np.ndarray | None:
    """np.load of one extracted annotation, None when the file is not there."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None


def coursework_records(zip_path: Path, scratch: Path) -> tuple[pd.DataFrame, dict[str, float]]:
    """The coursework's way: extract the whole zip, then np.load four files per id.

    Returns the table and the seconds of each step; the extracted copy is left in `scratch`
    for the caller to delete outside the timing.
    """

    def unzip() -> None:
        """Everything to disk, as the coursework did before reading anything."""
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(scratch)

    _, extract_s = timed(unzip)

    def build() -> pd.DataFrame:
        """Loop over the extracted images, four np.load calls per id."""
        images, annotations = scratch / _IMAGES, scratch / _ANNOTATIONS
        rows = []
        for image in sorted(images.iterdir()):
            ident = image.stem
            exp, val, aro, lnd = (
                _load(annotations / f"{ident}_{kind}.npy") for kind in ("exp", "val", "aro", "lnd")
            )
            if exp is None or not 0 <= int(float(exp)) < N_EXPRESSIONS:
                continue  # the coursework dropped unlabelled and uncertain faces too
            rows.append(
                {
                    "id": ident,
                    "image": str(image),
                    "expression": int(float(exp)),
                    "valence": float(val) if val is not None else np.nan,
                    "arousal": float(aro) if aro is not None else np.nan,
                    "landmarks": None
                    if lnd is None
                    else np.asarray(lnd, np.float32).reshape(N_POINTS, 2),
                }
            )
        return pd.DataFrame(rows)

    df, load_s = timed(build)
    return df, {"extract_s": extract_s, "load_s": load_s}


def project_records(zip_path: Path) -> pd.DataFrame:
    """The project's reader: members read straight from the zip, validated, nothing unpacked."""
    from helpers.data.datasets.affectnet import read_affectnet_zip

    return read_affectnet_zip(zip_path, progress=False).records


def run(ctx: Context) -> dict[str, Any]:
    """Interleaved repeats of both readers on the same zip; medians and their ratio."""
    zip_path = ctx.demo_zip()
    project_records(zip_path)  # warm-up: imports and the zip in the OS page cache, for both
    samples: dict[str, list[float]] = {
        "project_s": [],
        "coursework_s": [],
        "extract_s": [],
        "np_load_s": [],
    }
    n_project = n_coursework = 0
    for _ in range(ctx.scale.repeats):
        records, seconds = timed(lambda: project_records(zip_path))
        samples["project_s"].append(seconds)
        n_project = len(records)
        scratch = Path(tempfile.mkdtemp(dir=ctx.work, prefix="coursework-"))
        try:
            (df, steps), seconds = timed(
                lambda scratch=scratch: coursework_records(zip_path, scratch)
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)  # cleanup is not the coursework's cost
        samples["coursework_s"].append(seconds)
        samples["extract_s"].append(steps["extract_s"])
        samples["np_load_s"].append(steps["load_s"])
        n_coursework = len(df)
    project_s, coursework_s = median(samples["project_s"]), median(samples["coursework_s"])
    with zipfile.ZipFile(zip_path) as zf:
        members = len(zf.namelist())
    results = {
        "records_project": n_project,
        "records_coursework": n_coursework,
        "zip_members": members,
        "project_s": project_s,
        "coursework_s": coursework_s,
        "coursework_extract_s": median(samples["extract_s"]),
        "coursework_np_load_s": median(samples["np_load_s"]),
        "project_records_per_s": per_second(n_project, project_s),
        "coursework_records_per_s": per_second(n_coursework, coursework_s),
        "speedup": coursework_s / project_s if project_s > 0 else None,
        "samples": samples,
    }
    rows = [
        [
            "project: read_affectnet_zip (in place)",
            n_project,
            project_s,
            results["project_records_per_s"],
            1.0,
        ],
        [
            "coursework: extractall + 4 x np.load per id",
            n_coursework,
            coursework_s,
            results["coursework_records_per_s"],
            project_s / coursework_s,
        ],
        ["  of which extractall", "", results["coursework_extract_s"], "", ""],
        ["  of which np.load loop + DataFrame", "", results["coursework_np_load_s"], "", ""],
    ]
    return {
        "title": TITLE,
        "params": {
            "zip": str(zip_path),
            "repeats": ctx.scale.repeats,
            "timing": "median of interleaved repeats; both read a zip in the page cache",
        },
        "results": results,
        "comparisons": [
            comparison(
                "zip -> records, seconds",
                project_s,
                coursework_s,
                "s",
                higher_is_better=False,
                target=f">= {TARGET_RATIO:g}x faster",
                target_ratio=TARGET_RATIO,
            )
        ],
        "tables": [
            table(
                "Seconds to a records table",
                ["approach", "records", "seconds", "records/s", "speed vs project"],
                rows,
            )
        ],
        "notes": [
            "The project also validates every value (ranges, pickles refused, image "
            "headers checked) and counts what it drops; the coursework loop does not."
        ],
    }
