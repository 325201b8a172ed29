"""What notebook 07 shows of the predictor on photos: a person's own (a photo, a folder, or a list
of them) or generated demo scenes; the rows as a person reads them; the annotated pictures of
this run; two predictors' agreement on the faces both found. The predictor
(helpers.inference.predict) finds and reads the faces."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from helpers.core import paths
from helpers.core.errors import ConfigError, DataError
from helpers.core.words import counted
from helpers.inference.predict import summarize, summary_line

DEMO_FACES = 3  # faces placed in each demo scene
SHOWN_PICTURES = 6  # annotated photos notebook 07 draws; the folder holds every one
_VIDEO_FRAME = re.compile(r"_f\d{6}_gradcam(-\d+)?$")  # a video frame's heatmap (predict.py)
# The columns a person reads first; `error` joins them where a row failed.
SHOWN = ("file", "face", "status", "box_x", "box_y", "box_w", "box_h", "expression", "confidence",
         "valence", "arousal")  # fmt: skip
# What makes a face the same face in two predictors' rows: the file, the frame and the box.
_SAME_FACE = ("file", "frame", "face", "box_x", "box_y", "box_w", "box_h")


def inputs(photos: Any, scenes: Path, n_scenes: int, seed: int) -> list[Path]:
    """Notebook 07's inputs: its `photos` (own_photos), or where none are given n_scenes
    generated demo scenes saved in `scenes`."""
    return own_photos(photos) if photos else demo_scenes(scenes, n_scenes, seed)


def inputs_line(inputs: Sequence[Path], demo: bool) -> str:
    """What the notebook reads: the demo scenes and their faces, or the photos given."""
    if demo:
        return f"{len(inputs)} demo scenes with {DEMO_FACES} faces each"
    names = readable([str(p) for p in inputs])
    return f"{counted(len(inputs), 'input')} given: {', '.join(names[:5])}" + (
        f" and {len(names) - 5} more" if len(names) > 5 else ""
    )


def own_photos(photos: Any) -> list[Path]:
    """Notebook 07's `photos`: a photo, folder or video, or a list of them, each one that
    exists (a relative path is read from the kernel's folder, notebooks/); empty: none."""
    many = isinstance(photos, (list, tuple))
    items = list(photos) if many else [photos]
    found = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise ConfigError(f"photos must be a path or a list of paths (got {item!r})")
        if not os.fspath(item):
            continue
        if not Path(item).expanduser().exists():
            raise DataError(item, f"{paths.not_found(item)} (the parameter photos)")
        found.append(Path(item).expanduser())
    return found


def demo_scenes(folder: Path, n_scenes: int, seed: int) -> list[Path]:
    """n_scenes generated pictures of DEMO_FACES faces each (seeds seed, seed + 1, ...), saved
    in `folder`."""
    from PIL import Image

    from helpers.data import synthetic

    if isinstance(n_scenes, bool) or not isinstance(n_scenes, int) or n_scenes < 1:
        raise ConfigError(f"n_scenes must be an integer >= 1 (got {n_scenes!r})")
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for i in range(n_scenes):
        image, _ = synthetic.make_scene(seed=seed + i, n_faces=DEMO_FACES)
        saved.append(folder / f"scene_{i}.jpg")
        Image.fromarray(image).save(saved[-1], quality=95)
    return saved


def readable(files: Sequence[str]) -> list[str]:
    """File names as a person tells them apart: relative to the folder all of them are in
    (base names where they share one), not absolute paths a table cuts before the name."""
    names = [str(f) for f in files]
    if not names:
        return []
    try:
        common = os.path.commonpath([os.path.dirname(n) for n in names])
    except ValueError:  # relative and absolute mixed, or other drives: as given
        return names
    return [os.path.relpath(n, common) if common else n for n in names]


def shown(rows: pd.DataFrame) -> pd.DataFrame:
    """The predictor's rows to show: readable file names, the columns a person reads first
    (valence and arousal where the model has them), and `error` where a row failed."""
    columns = [c for c in SHOWN if c in rows.columns]
    if "error" in rows.columns and rows["error"].notna().any():
        columns.append("error")
    table = rows[columns].copy()
    files = table["file"].tolist()
    table["file"] = readable(files)
    if "error" in table:  # an error names its file as given: as the file column does
        table["error"] = [
            e.replace(f, name, 1) if isinstance(e, str) and isinstance(f, str) else e
            for e, f, name in zip(table["error"], files, table["file"], strict=True)
        ]
    return table.round(2)


def found_line(rows: pd.DataFrame, demo: bool) -> str:
    """Faces found: per demo scene against the DEMO_FACES placed in each, else per input."""
    if demo:
        found = (rows["status"] == "ok").groupby(rows["file"], sort=False).sum().tolist()
        return f"faces found per scene: {found} of {DEMO_FACES} placed in each"
    return summary_line(summarize(rows))


def pictures(rows: pd.DataFrame, limit: int = SHOWN_PICTURES) -> list[Path]:
    """The annotated pictures the predictor wrote for these rows (not those an earlier call
    left in the folder), each beside its Grad-CAM copy: videos and their frames' heatmaps left
    out, and at most `limit` photos, with a line naming the folder that holds them all (one
    figure of hundreds of panels is unreadable, and past matplotlib's size limit)."""
    files = [
        Path(p)
        for p in rows.attrs.get("annotated", [])
        if Path(p).suffix == ".jpg" and not _VIDEO_FRAME.search(Path(p).stem)
    ]
    photos = [p for p in files if not p.stem.endswith("_gradcam")]
    if len(photos) <= limit:
        return files
    kept = {p.stem for p in photos[:limit]}
    print(
        f"showing the first {limit} of {counted(len(photos), 'annotated photo')}; every one is "
        f"in {paths.shown(photos[0].parent)}"
    )
    return [p for p in files if p.stem.removesuffix("_gradcam") in kept]


def matched_faces(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """The faces both predictors found (status ok, the same file, frame and box), one row each,
    with `expression_first` and `expression_second`."""
    keys = [k for k in _SAME_FACE if k in first.columns and k in second.columns]

    def faces(rows: pd.DataFrame) -> pd.DataFrame:
        ok = rows[rows["status"] == "ok"]
        keyed = ok[keys].astype(object).where(ok[keys].notna(), None)  # NA keys match each other
        return keyed.assign(expression=ok["expression"].to_numpy())

    return faces(first).merge(faces(second), on=keys, suffixes=("_first", "_second"))


def agreement_line(keras_rows: pd.DataFrame, lite_rows: pd.DataFrame) -> str:
    """How often the int8 TFLite model gives the Keras model's expression, over the faces both
    found; photos without a face, unreadable ones and faces one of them missed are not faces
    they disagree on."""
    if "expression" not in keras_rows.columns or "expression" not in lite_rows.columns:
        return "the model has no expression head: no labels to compare"
    both = matched_faces(keras_rows, lite_rows)
    if not len(both):
        return "int8 TFLite and Keras found no face in common: nothing to compare"
    agree = (both["expression_first"] == both["expression_second"]).mean()
    line = f"int8 TFLite agrees with Keras on {agree:.0%} of {len(both)} faces"
    only = int((keras_rows["status"] == "ok").sum() + (lite_rows["status"] == "ok").sum())
    only -= 2 * len(both)
    return line + (f" ({only} found by one of them only)" if only else "")
