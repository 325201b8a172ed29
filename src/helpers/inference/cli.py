"""The command-line predictor, `python -m helpers.predict`: options, output files, exit codes.

    python -m helpers.predict --model MODEL.keras INPUT... [--out DIR] [--every N] [--no-detect]
                              [--annotate] [--explain] [--margin 0.2] [--min-face 30]
                              [--backend tflite]

Exit 0 when at least one input was read, 1 when none was, 2 for bad options or a bad model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from helpers.core.errors import ConfigError, DataError
from helpers.core.faces import DEFAULT_MARGIN, Detector
from helpers.core.jsonio import read_json
from helpers.inference.predict import (
    check_args,
    predict_images,
    run_of_model,
    summary_line,
    training_margin,
)
from helpers.inference.runtime import BACKENDS, open_model
from helpers.inference.tta import AUTO, TTA_SETTINGS, check_tta

FORMATS = ("csv", "json")


def _json_value(value: Any) -> Any:
    """NaN/NA -> null and numpy scalars -> Python, so the JSON is standard."""
    if isinstance(value, (list, dict)):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def write_outputs(
    table: pd.DataFrame, out_dir: str | os.PathLike, formats: Iterable[str] = FORMATS
) -> list[Path]:
    """predictions.csv (landmarks as a JSON string) and/or predictions.json (a list of rows)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if "csv" in formats:
        flat = table.copy()
        if "landmarks" in flat:
            flat["landmarks"] = [
                json.dumps(v) if isinstance(v, list) else None for v in flat["landmarks"]
            ]
        flat.to_csv(out / "predictions.csv", index=False)
        written.append(out / "predictions.csv")
    if "json" in formats:
        records = [{k: _json_value(v) for k, v in row.items()} for row in table.to_dict("records")]
        (out / "predictions.json").write_text(json.dumps(records, indent=1) + "\n")
        written.append(out / "predictions.json")
    return written


def check_out_dir(
    out_dir: str | os.PathLike, formats: Iterable[str] = FORMATS, overwrite: bool = False
) -> Path:
    """The output folder, usable before any prediction is made: an existing file, or a path
    under one, is a ConfigError now rather than a traceback after all the work; so is a folder
    already holding predictions, unless overwrite."""
    out = Path(out_dir)
    for part in (out, *out.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(f"--out {out}: {part} is a file, not a folder")
            break
    taken = [f"predictions.{f}" for f in formats if (out / f"predictions.{f}").exists()]
    if taken and not overwrite:
        raise ConfigError(
            f"--out {out} already holds {', '.join(taken)}; pass --overwrite to "
            "replace it, or choose another folder"
        )
    return out


def _parser() -> argparse.ArgumentParser:
    """Options of `python -m helpers.predict`."""
    p = argparse.ArgumentParser(
        prog="python -m helpers.predict",
        description="Expression, valence/arousal and landmarks for every face in images, "
        "folders (recursive) and videos.",
    )
    p.add_argument("--model", required=True, help="trained .keras file, or an exported .tflite")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image, folder or video files")
    p.add_argument(
        "--out",
        help="folder for predictions.csv/.json (and annotated/); "
        "without it a short table is printed",
    )
    p.add_argument("--format", default="csv,json", help="csv, json or csv,json (default)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace predictions already in OUT (refused without it)",
    )
    p.add_argument(
        "--annotate", action="store_true", help="also write annotated images to OUT/annotated/"
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="also write OUT/annotated/<name>_gradcam.jpg: each face's Grad-CAM heatmap of its "
        "predicted expression (Keras models only; implies --annotate)",
    )
    p.add_argument("--every", type=int, default=10, help="video: every Nth frame (default 10)")
    p.add_argument(
        "--no-detect",
        dest="detect",
        action="store_false",
        help="each image is one pre-cropped face (FER-2013 style)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="crop margin per side, as a share of the face box (default: the framing of the "
        f"model's training faces, from its card; {DEFAULT_MARGIN} without one)",
    )
    d = Detector()
    p.add_argument("--min-face", type=int, default=d.min_face, help="smallest face side, px")
    p.add_argument(
        "--scale-factor",
        type=float,
        default=d.scale_factor,
        help="Haar pyramid step (smaller: more faces found, slower)",
    )
    p.add_argument(
        "--min-neighbors",
        type=int,
        default=d.min_neighbors,
        help="Haar votes a face needs (larger: fewer false faces)",
    )
    p.add_argument(
        "--tta",
        choices=TTA_SETTINGS,
        default="none",
        help="test-time augmentation: flip averages each face with its mirror image, tencrop "
        "ten crops and their mirrors; auto the mode notebook 05 chose for this model (its run "
        "folder's metrics)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--backend", choices=BACKENDS, help="default: from the model file's suffix")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


# A face crop is at most this big: an image this small with no face found is likely one.
CROP_SIDE = 160


def evaluated_tta(model_path: str | os.PathLike) -> str:
    """The test-time augmentation notebook 05 evaluated a run folder's model with, so the
    predictor gives the predictions whose accuracy the report states."""
    path = Path(model_path)
    run, name = run_of_model(path)
    metrics = run.metrics_path(name)
    reason = "not found"
    if metrics.is_file():
        try:
            return check_tta(read_json(metrics).get("tta"))
        except (DataError, ConfigError) as error:
            reason = str(error)
    raise ConfigError(
        f"--tta auto uses the mode notebook 05 chose for {path.name}, read from {metrics}: "
        f"{reason}. Evaluate the model (notebook 05) or give a mode (none, flip, tencrop)"
    )


def training_note(model_path: str | os.PathLike) -> str | None:
    """One line when the model file's run says it learned from the generated demo faces: on
    real photos such a model gives near-uniform probabilities, which looks like a broken tool."""
    path = Path(model_path)
    run, name = run_of_model(path)
    why = None
    try:
        if run.manifest.is_file() and read_json(run.manifest).get("data", {}).get("demo"):
            why = f"run {run.name} used the demo dataset"
        card = run.card_path(name)
        if why is None and card.is_file() and read_json(card).get("profile") == "smoke":
            why = "profile smoke"
    except (DataError, AttributeError):
        return None
    if why is None:
        return None
    return (
        f"note: {path.name} was trained on the generated demo faces ({why}); on real photos "
        "expect near-uniform probabilities. Train on real faces (./run_all.sh --data ...) "
        "for real predictions."
    )


def no_face_hint(name: str) -> str:
    """'no face found' for one input, with --no-detect suggested when it is crop-sized."""
    try:
        with Image.open(name) as image:
            width, height = image.size
    except (OSError, ValueError):
        return f"no face found: {name}"
    if max(width, height) <= CROP_SIDE:
        return (
            f"no face found: {name} ({width}x{height}: if it is already a face crop, "
            "pass --no-detect)"
        )
    return f"no face found: {name}"


def check_explain(model: str, backend: str | None, out: str | None) -> None:
    """--explain needs gradients and a folder for its images: refused before any work."""
    if backend == "tflite" or Path(model).suffix.lower() == ".tflite":
        raise ConfigError(
            f"--explain needs a Keras .keras model: {Path(model).name} runs as TFLite, "
            "which carries no gradients"
        )
    if not out:
        raise ConfigError("--explain writes heatmap images: give --out DIR")


def _print_table(table: pd.DataFrame) -> None:
    """The few columns a person reads, when no --out folder is given."""
    shown = [
        c
        for c in (
            "file",
            "frame",
            "face",
            "status",
            "expression",
            "confidence",
            "valence",
            "arousal",
            "box_x",
            "box_y",
            "box_w",
            "box_h",
        )
        if c in table
    ]
    ok = table[table["status"] == "ok"]
    if len(ok):
        print(ok[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when at least one input was read, 1 when none was, 2 for bad options or model."""
    args = _parser().parse_args(argv)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    try:
        if args.explain:
            check_explain(args.model, args.backend, args.out)
        if not formats or set(formats) - set(FORMATS):
            raise ConfigError(f"--format must be csv, json or csv,json, got {args.format!r}")
        detector = Detector(
            scale_factor=args.scale_factor, min_neighbors=args.min_neighbors, min_face=args.min_face
        )
        margin, margin_source = (
            (args.margin, "--margin") if args.margin is not None else training_margin(args.model)
        )
        check_args(margin, args.batch_size, args.every)
        if args.out:
            check_out_dir(args.out, formats, args.overwrite)
        tta = evaluated_tta(args.model) if args.tta == AUTO else args.tta
        model = open_model(args.model, args.backend)
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else None
    note = training_note(args.model)
    if note:
        print(note, file=sys.stderr)
    if args.tta == AUTO:
        print(f"test-time augmentation: {tta} (as notebook 05 evaluated it)", file=sys.stderr)
    if args.detect:
        print(
            f"face crops: margin {margin:g} of the face box per side ({margin_source})",
            file=sys.stderr,
        )
    with warnings.catch_warnings():  # library warnings (Pillow's corrupt EXIF...) stay quiet
        warnings.simplefilter("ignore")
        table = predict_images(
            model,
            args.inputs,
            detect=args.detect,
            margin=margin,
            batch_size=args.batch_size,
            every=args.every,
            progress=not args.quiet,
            detector=detector,
            tta=tta,
            annotate_dir=(out / "annotated") if out and (args.annotate or args.explain) else None,
            explain=args.explain,
        )
    for row in table[table["status"] == "error"].itertuples():
        print(f"skipped: {row.error}", file=sys.stderr)
    for name in table.loc[table["status"] == "no_face", "file"].unique():
        if not (table.loc[table["file"] == name, "status"] == "ok").any():
            print(no_face_hint(name), file=sys.stderr)
    summary = table.attrs["summary"]
    if out is not None:
        written = write_outputs(table, out, formats)
        print(
            "wrote "
            + ", ".join(str(p) for p in written)
            + (f", {out / 'annotated'}/" if args.annotate or args.explain else "")
        )
    else:
        _print_table(table)
    print(summary_line(summary))
    return 0 if summary["with_faces"] + summary["without_faces"] else 1


if __name__ == "__main__":
    sys.exit(main())
