"""Where a model looks on the test faces: Grad-CAM heatmaps (helpers.inference.explain) of the
images notebook 05 shows, the share of each heatmap that lies on the face, and the file the
report draws its panel from.

The face is the convex hull of the 68 annotated landmarks, mapped into the model's input. A
source without landmarks (FER-2013, ExpW, class folders) holds face crops, where the background
is what the crop caught around the face: there the face is the image minus a FACE_BORDER share
on every side. The summary says which was used (`region`) and how much of the image the face
covers (`face_area_share`): a heatmap spread evenly over the image scores that share, so
`on_face_share` above it means the model looks at the face more than at the background.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core import progress
from helpers.core.errors import ConfigError, DataError
from helpers.core.images import make_uri, parse_uri
from helpers.core.landmarks import N_POINTS, to_model_space
from helpers.core.preprocess import decode_for_model
from helpers.evaluation.predictions import confident_mistakes

FACE_BORDER = 0.15  # share of each side that is background in a face crop without landmarks
HULL = "convex hull of the 68 landmarks"
CENTRE = f"image minus a {FACE_BORDER:.0%} border"
ROLES = ("correct", "mistake")
# Images decoded and explained at a time (a multiple of the usual batch sizes): 512 images at
# 224 px are about 0.8 GB while explained, whatever the size of the test split.
EXPLAIN_CHUNK = 512
# Columns kept with the heatmaps; `heatmap` itself is stored as uint8 (1/255 steps).
_KEPT = (
    "id",
    "image",
    "width",
    "height",
    "expression",
    "expression_pred",
    "confidence",
    "role",
    "sampled",
    "target",
    "on_face",
    "face_area",
    "region",
)


def select_examples(
    predictions: pd.DataFrame, per_class: int = 2, mistakes: int = 12
) -> pd.DataFrame:
    """The images to show: per true class its most confident correct predictions, and the
    confident mistakes notebook 05 lists (helpers.evaluation.predictions.confident_mistakes)."""
    needed = {"expression", "expression_pred", "confidence"}
    if not needed <= set(predictions.columns):
        return predictions.iloc[0:0].assign(role=pd.Series(dtype=object))
    right = predictions[
        (predictions["expression"] >= 0)
        & (predictions["expression"] == predictions["expression_pred"])
    ]
    correct = (
        right.sort_values("confidence", ascending=False, kind="stable")
        .groupby("expression", sort=True)
        .head(per_class)
    )
    wrong = confident_mistakes(predictions, n=mistakes)
    return pd.concat(
        [correct.assign(role="correct"), wrong.assign(role="mistake")], ignore_index=False
    )


def _points(value: Any) -> np.ndarray | None:
    """(68, 2) float landmarks from a table cell, or None when the image has none."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    pts = np.asarray(
        np.stack([np.asarray(p, dtype=np.float64) for p in value])
        if isinstance(value, np.ndarray) and value.dtype == object
        else value,
        dtype=np.float64,
    )
    if pts.size != 2 * N_POINTS:
        return None
    pts = pts.reshape(N_POINTS, 2)
    return None if not np.isfinite(pts).all() else pts


def face_mask(landmarks: Any, height: int, width: int, size: int) -> tuple[np.ndarray, str]:
    """(size, size) bool mask of the face in the model's input, and which rule made it."""
    import cv2

    pts = _points(landmarks)
    mask = np.zeros((size, size), dtype=np.uint8)
    if pts is not None:
        inside = to_model_space(pts.astype(np.float32), int(height), int(width), size)
        hull = cv2.convexHull(np.rint(inside * 16).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
        if mask.any():
            return mask.astype(bool), HULL
    border = round(FACE_BORDER * size)
    mask[border : size - border, border : size - border] = 1
    return mask.astype(bool), CENTRE


def heat_share(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, the share of positive heat inside the mask (NaN when a map holds no heat)."""
    heat = np.clip(np.asarray(maps, dtype=np.float64), 0, None).reshape(len(maps), -1)
    inside = (heat * np.asarray(masks, dtype=bool).reshape(len(maps), -1)).sum(axis=1)
    total = heat.sum(axis=1)
    return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


def explain_line(n: int) -> str:
    """What explaining the predictions does before its figures: how many heatmaps it makes."""
    return f"Grad-CAM: explaining {n:,} test faces ..."


def explain_predictions(
    model: Any,
    predictions: pd.DataFrame,
    *,
    n: int | None = None,
    per_class: int = 2,
    mistakes: int = 12,
    seed: int = 0,
    batch_size: int = 32,
) -> pd.DataFrame:
    """Grad-CAM of the predicted class for the images select_examples picks and for a seeded
    sample of n test images (None: all), one row per image with its `heatmap` ((S, S) in
    [0, 1] at the model's input size), the share of it on the face and the face's share of
    the image. attrs: the feature map explained and the input size."""
    from helpers.inference.explain import Explainer
    from helpers.models.factory import model_metadata

    meta = model_metadata(model)
    size, channels = meta["image_size"], meta["channels"]
    if "expression" not in meta["heads"] or "expression_pred" not in predictions:
        return _empty(predictions.assign(role="", sampled=False), meta)
    shown = select_examples(predictions, per_class, mistakes)
    pool = predictions
    if n is not None and n < len(pool):
        pool = pool.iloc[np.sort(np.random.default_rng(seed).choice(len(pool), n, replace=False))]
    rows = pd.concat(
        [shown, pool.assign(role="")[~pool.index.isin(shown.index)]], ignore_index=False
    )
    rows = rows.assign(sampled=rows.index.isin(pool.index)).reset_index(drop=True)
    if rows.empty:
        return _empty(rows, meta)
    progress.line(explain_line(len(rows)))
    explainer = Explainer(model)
    targets, maps, on_face, face_area, regions = [], [], [], [], []
    # A chunk of images at a time: decoded pixels, float inputs and masks are freed after each,
    # so memory holds the heatmaps alone, however many test images there are.
    for start in range(0, len(rows), EXPLAIN_CHUNK):
        chunk = rows.iloc[start : start + EXPLAIN_CHUNK]
        images = np.stack([decode_for_model(str(u), size, channels)[0] for u in chunk["image"]])
        explained = explainer(
            images.astype(np.float32),
            target=chunk["expression_pred"].to_numpy(np.int64),
            batch_size=batch_size,
        )
        masks, found = zip(
            *(
                face_mask(row.get("landmarks"), row["height"], row["width"], size)
                for _, row in chunk.iterrows()
            ),
            strict=True,
        )
        targets.append(explained.targets)
        maps.extend(explained.maps)
        on_face.append(heat_share(explained.maps, np.stack(masks)))
        face_area.append(np.stack(masks).reshape(len(chunk), -1).mean(axis=1))
        regions.extend(found)
    rows["target"] = np.concatenate(targets)
    rows["heatmap"] = pd.Series(maps, dtype=object)
    rows["on_face"] = np.concatenate(on_face)
    rows["face_area"] = np.concatenate(face_area)
    rows["region"] = regions
    rows.attrs = {"layer": explainer.layer, "image_size": int(size), "model": meta["name"]}
    return rows


def _empty(rows: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """The table explain_predictions returns when there is nothing to explain."""
    out = rows.iloc[0:0].copy()
    for column in ("target", "heatmap", "on_face", "face_area", "region"):
        out[column] = pd.Series(dtype=object)
    out.attrs = {"layer": None, "image_size": int(meta["image_size"]), "model": meta["name"]}
    return out


def summary(explained: pd.DataFrame) -> dict[str, Any]:
    """The metrics JSON's `explain` block: mean share of the heatmap on the face, over the
    sampled test images whose heatmap holds any heat, against the face's share of the image."""
    sampled = explained[explained["sampled"].astype(bool)] if len(explained) else explained
    share = pd.to_numeric(sampled.get("on_face"), errors="coerce")
    counts = sampled["region"].value_counts() if len(sampled) else pd.Series(dtype=int)
    if len(counts) > 1:
        region = ", ".join(f"{name} ({count} images)" for name, count in counts.items())
    else:
        region = str(counts.index[0]) if len(counts) else None
    has_heat = share.notna() if share is not None else pd.Series(dtype=bool)
    return {
        "method": "Grad-CAM",
        "head": "expression",
        "target": "predicted class",
        "layer": explained.attrs.get("layer"),
        "region": region,
        "n": int(has_heat.sum()),
        "n_without_heat": int(len(sampled) - has_heat.sum()),
        "on_face_share": float(share[has_heat].mean()) if has_heat.any() else None,
        "face_area_share": float(sampled.loc[has_heat, "face_area"].mean())
        if has_heat.any()
        else None,
    }


def explain_regression(
    model: Any, predictions: pd.DataFrame, n: int = 4, seed: int = 0, batch_size: int = 32
) -> pd.DataFrame:
    """Signed Grad-CAM of valence and arousal for n seeded test images: `valence_map` and
    `arousal_map` in [-1, 1], positive where the face pushes the prediction up."""
    from helpers.inference.explain import Explainer
    from helpers.models.factory import model_metadata

    meta = model_metadata(model)
    heads = [h for h in ("valence", "arousal") if h in meta["heads"]]
    rows = predictions.iloc[0:0] if not heads else predictions
    if n < len(rows):
        rows = rows.iloc[np.sort(np.random.default_rng(seed).choice(len(rows), n, replace=False))]
    rows = rows.reset_index(drop=True)
    if rows.empty:
        return rows
    size, channels = meta["image_size"], meta["channels"]
    images = np.stack([decode_for_model(str(u), size, channels)[0] for u in rows["image"]])
    explainer = Explainer(model)
    for head in heads:
        maps = explainer(images.astype(np.float32), head=head, batch_size=batch_size).maps
        rows[f"{head}_map"] = pd.Series(list(maps), dtype=object)
    return rows


def save_explained(explained: pd.DataFrame, path: str | os.PathLike) -> Path:
    """The heatmaps (uint8) and their rows in one .npz, written whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    size = int(explained.attrs.get("image_size") or 1)
    # Each map to uint8 on its own: no float copy of every heatmap at once.
    heat = (
        np.stack(
            [
                np.rint(np.clip(np.asarray(m, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
                for m in explained["heatmap"]
            ]
        )
        if len(explained)
        else np.zeros((0, size, size), np.uint8)
    )
    arrays: dict[str, np.ndarray] = {
        "heatmaps": heat,
        "attrs": np.array(json.dumps(explained.attrs)),
    }
    arrays["landmarks"] = (
        np.stack(
            [
                np.full((N_POINTS, 2), np.nan) if (pts := _points(v)) is None else pts
                for v in (
                    explained["landmarks"] if "landmarks" in explained else [None] * len(explained)
                )
            ]
        ).astype(np.float32)
        if len(explained)
        else np.zeros((0, N_POINTS, 2), np.float32)
    )
    for column in _KEPT:
        values = explained[column] if column in explained else pd.Series([None] * len(explained))
        arrays[column] = (
            values.astype(str).to_numpy(dtype=str)
            if column in ("id", "image", "role", "region")
            else values.to_numpy(dtype=np.float64)
        )
    handle, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez_compressed(out, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_explained(path: str | os.PathLike, data: str | os.PathLike | None = None) -> pd.DataFrame:
    """What save_explained wrote, with `heatmap` back in [0, 1]; a bad file is a DataError.

    The images are read from the run's source data where the run found it; `data` names the
    same zip where it is now, for a run whose data has moved since (a missing zip is a
    DataError that says so)."""
    table = _read_explained(Path(path))
    table["image"] = _repointed(table["image"].astype(str).tolist(), data, Path(path))
    return table


def _repointed(images: list[str], data: str | os.PathLike | None, path: Path) -> list[str]:
    """Zip references moved to `data`, after checking that the archives they name exist."""
    refs = [parse_uri(uri) for uri in images]
    archives = sorted({archive for archive, _ in refs if archive is not None})
    if data is not None:
        if not archives:
            raise ConfigError(
                f"load_explained: data= repoints a zip; {path.name}'s images are files"
            )
        if not Path(data).is_file():
            raise DataError(data, "file not found (load_explained's data=)")
        return [make_uri(data, member) for _, member in refs]
    missing = [a for a in archives if not Path(a).is_file()]
    if missing:
        raise DataError(
            missing[0],
            f"file not found: the source data of {path} has moved; give its path now as "
            f"load_explained(..., data='/path/to/{Path(missing[0]).name}')",
        )
    return images


def _read_explained(path: Path) -> pd.DataFrame:
    """The table save_explained wrote, images as recorded."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        attrs = json.loads(str(arrays.pop("attrs")))
        maps = arrays.pop("heatmaps").astype(np.float32) / 255.0
    except (OSError, ValueError, KeyError) as error:
        raise DataError(path, f"not a heatmaps file written by save_explained ({error})") from error
    table = pd.DataFrame({k: arrays[k] for k in _KEPT if k in arrays})
    for column in ("expression", "expression_pred", "target", "width", "height"):
        if column in table:
            table[column] = table[column].astype(np.int64)
    table["sampled"] = table["sampled"].astype(bool)
    table["heatmap"] = pd.Series(list(maps), dtype=object)
    points = arrays.get("landmarks", np.full((len(table), N_POINTS, 2), np.nan))
    table["landmarks"] = pd.Series([None if np.isnan(p).all() else p for p in points], dtype=object)
    table.attrs = attrs
    return table
