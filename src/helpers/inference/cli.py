"""The command-line predictor, `python -m helpers.predict`: options, output files, exit codes.

    python -m helpers.predict --model MODEL.keras INPUT... [--out DIR] [--every N] [--no-detect]
                              [--annotate] [--explain] [--margin 0.2] [--min-face 30]
                              [--backend tflite] [--uncalibrated]

Exit 0 when at least one input was read, 1 when none was, 2 for bad options or a bad model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.errors import ConfigError, DataError, os_reason
from helpers.core.faces import DEFAULT_MARGIN, MIN_FACE_SHARE, Detector, setting_problem
from helpers.core.helptext import HelpFormatter
from helpers.core.images import HEIC_EXTENSIONS
from helpers.core.labels import EXPRESSIONS
from helpers.core.words import counted
from helpers.inference.calibration import calibration_fit
from helpers.inference.explain import check_backend
from helpers.inference.predict import (
    CROP_SIDE,
    check_args,
    crop_sized,
    crop_sized_line,
    evaluated_tta,
    health_note,
    model_classes,
    model_temperature,
    note_lines,
    outside_note,
    predict_images,
    run_of_model,
    stale_metrics,
    stored_size,
    summary_line,
    training_margin,
    training_note,
)
from helpers.inference.runtime import BACKENDS, open_model
from helpers.inference.tta import AUTO, TTA_SETTINGS
from helpers.inference.video import (
    check_smooth,
    drawable,
    summary_lines,
    timeline_names,
    video_summary,
    write_timelines,
)

FORMATS = ("csv", "json")


def _json_value(value: Any) -> Any:
    """NaN/NA -> null and numpy scalars -> Python, so the JSON is standard."""
    if isinstance(value, (list, dict)):
        return value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


PREDICTION_FILES = tuple(f"predictions.{f}" for f in FORMATS)
ANNOTATED = "annotated"
VIDEO_SUMMARY = "video_summary.csv"  # one row per face followed in a video
TIMELINES = "timelines"  # one figure per video: its faces' expressions over time


def write_outputs(
    table: pd.DataFrame, out_dir: str | os.PathLike, formats: Iterable[str] = FORMATS
) -> list[Path]:
    """predictions.csv (landmarks as a JSON string) and/or predictions.json (a list of rows);
    a file that cannot be written is a ConfigError naming it, not a traceback."""
    out = Path(out_dir)
    written = []
    target = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        if "csv" in formats:
            target = out / "predictions.csv"
            flat = table.copy()
            if "landmarks" in flat:
                flat["landmarks"] = [
                    json.dumps(v) if isinstance(v, list) else None for v in flat["landmarks"]
                ]
            flat.to_csv(target, index=False)
            written.append(target)
        if "json" in formats:
            target = out / "predictions.json"
            records = [
                {k: _json_value(v) for k, v in row.items()} for row in table.to_dict("records")
            ]
            target.write_text(json.dumps(records, indent=1) + "\n")
            written.append(target)
    except OSError as error:
        raise ConfigError(f"{target}: cannot be written ({os_reason(error)})") from error
    return written


def write_videos(table: pd.DataFrame, videos: pd.DataFrame, out: Path) -> list[Path]:
    """video_summary.csv (each track's row naming its video's figure) and timelines/<video>.png
    when a video had a face followed; a file that cannot be written is a ConfigError naming it."""
    if videos.empty:
        return []
    figures = timeline_names(table) if drawable(table) else {}
    column = [f"{TIMELINES}/{figures[v]}" if v in figures else "" for v in videos["file"]]
    target = out / VIDEO_SUMMARY
    try:
        videos.assign(timeline=column).to_csv(target, index=False)
    except OSError as error:
        raise ConfigError(f"{target}: cannot be written ({os_reason(error)})") from error
    return [target, *write_timelines(table, out / TIMELINES)]


def own_outputs(out: Path) -> list[Path]:
    """What the predictor writes in an output folder, left out when an input folder holds it
    (--out beside the photos, or above them): the rest of the folder is read as input."""
    return [out / name for name in (*PREDICTION_FILES, VIDEO_SUMMARY, ANNOTATED, TIMELINES)]


def _previous(out: Path) -> list[str]:
    """What an earlier run left in a folder: predictions in either format, video_summary.csv,
    annotated images and videos, timeline figures."""
    names = (*PREDICTION_FILES, VIDEO_SUMMARY)
    found = [name for name in names if os.path.lexists(out / name)]
    for folder in (ANNOTATED, TIMELINES):
        if (out / folder).is_dir() and any((out / folder).iterdir()):
            found.append(f"{folder}/")
    return found


def _make_folder(out: Path, folder: Path) -> None:
    """Create a folder (parents too) and prove it takes a file, before any work is done."""
    if folder.is_symlink() and not folder.exists():
        raise ConfigError(f"--out {out}: {folder} is a link to a missing {os.readlink(folder)}")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {out}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ConfigError(
            f"--out {out}: cannot create or write to {folder} ({os_reason(error)})"
        ) from error


def check_out_dir(
    out_dir: str | os.PathLike,
    formats: Iterable[str] = FORMATS,
    overwrite: bool = False,
    annotate: bool = False,
) -> Path:
    """The output folder (and annotated/ when annotating), created and shown writable before
    any prediction is made, so a bad --out is a ConfigError now rather than a traceback after
    all the work. A folder holding an earlier run's outputs (predictions in either format,
    video_summary.csv, annotated images or videos, timelines) is refused unless overwrite: one
    folder, one run."""
    out = Path(out_dir)
    for part in (out, *out.parents):
        if part.exists():
            if not part.is_dir():
                raise ConfigError(f"--out {out}: {part} is a file, not a folder")
            break
    for name in (*PREDICTION_FILES, VIDEO_SUMMARY):
        if (out / name).is_dir():
            raise ConfigError(f"--out {out}: {out / name} is a folder, not a file")
    for name in (ANNOTATED, TIMELINES):
        if os.path.lexists(out / name) and not (out / name).is_dir():
            raise ConfigError(f"--out {out}: {out / name} is a file, not a folder")
    taken = _previous(out) if out.is_dir() else []
    if taken and not overwrite:
        raise ConfigError(
            f"--out {out} already holds {', '.join(taken)}; pass --overwrite to replace "
            "an earlier run's predictions, or choose another folder"
        )
    _make_folder(out, out)
    if annotate:
        _make_folder(out, out / ANNOTATED)
    return out


def _missing_folders(out: Path, annotate: bool) -> list[Path]:
    """The folders check_out_dir would create: out and its missing parents, annotated/ inside."""
    folders = [out / ANNOTATED] if annotate and not os.path.lexists(out / ANNOTATED) else []
    for part in (out, *out.parents):
        if os.path.lexists(part):
            break
        folders.append(part)
    return folders


def _remove_empty(folders: list[Path]) -> None:
    """Remove the folders this run created that are still empty, innermost first."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def clear_out_dir(out: Path) -> None:
    """An earlier run's predictions.csv/.json, video_summary.csv, annotated/*.jpg and *.avi and
    timelines/*.png removed (--overwrite), so the folder ends up holding one run; other files
    are left alone."""
    images = []
    for folder, pattern in ((ANNOTATED, "*.jpg"), (ANNOTATED, "*.avi"), (TIMELINES, "*.png")):
        images += sorted((out / folder).glob(pattern)) if (out / folder).is_dir() else []
    for path in [out / name for name in (*PREDICTION_FILES, VIDEO_SUMMARY)] + images:
        try:
            if os.path.lexists(path) and not path.is_dir():
                path.unlink()
        except OSError as error:
            raise ConfigError(f"--overwrite: cannot remove {path} ({os_reason(error)})") from error


EXAMPLES = """examples:
  python -m helpers.predict --model reports/<run>/models/custom_cnn.keras photos/ --out p --annotate
  python -m helpers.predict --model model.keras interview.mp4 --every 5 --smooth 1 --out video-out
  python -m helpers.predict --model model.keras photos/ --out explained --explain
  python -m helpers.predict --model reports/<run>/export/custom_cnn.int8.tflite photos/
  python -m helpers.predict --model model.keras fer_faces/ --no-detect   # pre-cropped faces
  python -m helpers.predict --model model.keras group.jpg --min-face-share 0   # small faces too"""


def _parser() -> argparse.ArgumentParser:
    """Options of `python -m helpers.predict`."""
    p = argparse.ArgumentParser(
        prog="python -m helpers.predict",
        description="Expression, valence/arousal and landmarks for every face in images, "
        "folders (recursive) and videos.",
        formatter_class=HelpFormatter,
        epilog=EXAMPLES,
    )
    p.add_argument("--model", required=True, help="trained .keras file, or an exported .tflite")
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="image, folder or video files, or a .zip of photos (zip://ARCHIVE!MEMBER: one)",
    )
    p.add_argument(
        "--out",
        help="folder for predictions.csv/.json (and annotated/; for videos video_summary.csv "
        "and timelines/); without it a short table is printed",
    )
    p.add_argument("--format", default="csv,json", help="csv, json or csv,json (default)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run's predictions in OUT (predictions.csv/.json, "
        "video_summary.csv, the .jpg and .avi files in annotated/ and the .png files in "
        "timelines/); a folder holding them is refused without it",
    )
    p.add_argument(
        "--annotate",
        action="store_true",
        help="also write annotated images (a video: one annotated .avi) to OUT/annotated/",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="also write OUT/annotated/<name>_gradcam.jpg: each face's Grad-CAM heatmap of its "
        "predicted expression (Keras models only; implies --annotate)",
    )
    p.add_argument("--every", type=int, default=10, help="video: every Nth frame (default 10)")
    p.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="video: each followed face's probabilities, valence and arousal averaged over "
        "SECONDS centred on each frame, its expression read from the means (default 0: none)",
    )
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
        "--min-face-share",
        type=float,
        default=MIN_FACE_SHARE,
        metavar="SHARE",
        help="smallest face side as a share of the image's shorter side, over --min-face: the "
        "cascade's false faces are small; 0 for the small faces of group photos",
    )
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
    p.add_argument(
        "--uncalibrated",
        action="store_true",
        help="the raw softmax over every class of the head as confidence, not the temperature "
        "notebook 05 fitted on the validation split nor the classes it scored the model on (its "
        "run folder's metrics)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="faces per model call")
    p.add_argument("--backend", choices=BACKENDS, help="default: from the model file's suffix")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def no_face_hint(name: str, min_face_share: float = 0.0) -> str:
    """'no face found' for one input, with --no-detect suggested when it is crop-sized, and
    --min-face-share 0 when faces smaller than its share were not looked for (a group photo)."""
    size = stored_size(name)
    if size is None:
        return f"no face found: {name}"
    width, height = size
    if max(width, height) <= CROP_SIDE:
        return (
            f"no face found: {name} ({width}x{height}: if it is already a face crop, "
            "pass --no-detect)"
        )
    if min_face_share > 0:
        return (
            f"no face found: {name} (faces under {min_face_share:g} of its shorter side, "
            f"{round(min_face_share * min(width, height))} px, were not looked for: "
            "--min-face-share 0 looks for every face)"
        )
    return f"no face found: {name}"


def check_model_file(model: str, backend: str | None) -> None:
    """--model and --backend that cannot work together, refused before any work."""
    path = Path(model)
    if path.is_dir():
        raise ConfigError(
            f"--model {model}: is a folder, not a model file (give its .keras or .tflite file)"
        )
    if backend == "keras" and path.suffix.lower() == ".tflite":
        raise ConfigError(
            f"--backend keras cannot run {path.name}, a TFLite file: leave --backend out"
        )


def make_detector(args: argparse.Namespace) -> Detector:
    """The face detector of the command's options; a bad value names its option."""
    for flag in ("scale_factor", "min_neighbors", "min_face", "min_face_share"):
        problem = setting_problem(flag, getattr(args, flag))
        if problem:
            raise ConfigError(f"--{flag.replace('_', '-')} {problem}")
    return Detector(
        scale_factor=args.scale_factor,
        min_neighbors=args.min_neighbors,
        min_face=args.min_face,
        min_face_share=args.min_face_share,
    )


def left_out_line(left_out: list[str]) -> str | None:
    """One line saying how many files the input folders held that were not read, and why."""
    if not left_out:
        return None
    counts = Counter(Path(p).suffix.lower() or "(no extension)" for p in left_out)
    kinds = ", ".join(f"{n} {suffix}" for suffix, n in counts.most_common())
    heic = (
        " (HEIC/HEIF photos are not supported: convert them to JPEG or PNG)"
        if any(s in HEIC_EXTENSIONS for s in counts)
        else ""
    )
    archive = " (a .zip is read when named as an input itself)" if ".zip" in counts else ""
    return (
        f"left out {counted(len(left_out), 'file')} in the input folders that are neither an "
        f"image nor a video: {kinds}{heic}{archive}"
    )


def check_explain(model: str, backend: str | None, out: str | None) -> None:
    """--explain needs gradients and a folder for its images: refused before any work."""
    if backend == "tflite" or Path(model).suffix.lower() == ".tflite":
        raise ConfigError(
            f"--explain needs a Keras .keras model: {Path(model).name} runs as TFLite, "
            "which carries no gradients"
        )
    if not out:
        raise ConfigError("--explain writes heatmap images: give --out DIR")
    check_backend()  # tf.GradientTape: refused now, before any folder is made


def _print_table(table: pd.DataFrame) -> None:
    """The few columns a person reads, when no --out folder is given (a video's frame, time and
    track only when a video was read)."""
    ok = table[table["status"] == "ok"]
    shown = [
        c
        for c in (
            "file",
            "frame",
            "time",
            "face",
            "track",
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
        if c in table and (c not in ("frame", "time", "track") or ok[c].notna().any())
    ]
    if len(ok):
        print(ok[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when at least one input was read, 1 when none was, 2 for bad options or model."""
    args = _parser().parse_args(argv)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    annotating = args.annotate or args.explain
    made: list[Path] = []  # folders the checks create, removed again if the model fails
    try:
        if args.explain:
            check_explain(args.model, args.backend, args.out)
        if args.annotate and not args.out:
            raise ConfigError("--annotate writes annotated images: give --out DIR")
        if not formats or set(formats) - set(FORMATS):
            raise ConfigError(f"--format must be csv, json or csv,json, got {args.format!r}")
        check_model_file(args.model, args.backend)
        detector = make_detector(args)
        margin, margin_source = (
            (args.margin, "--margin") if args.margin is not None else training_margin(args.model)
        )
        check_args(margin, args.batch_size, args.every, flags=True)
        check_smooth(args.smooth, "--smooth")
        made = _missing_folders(Path(args.out), annotating) if args.out else []
        if args.out:
            check_out_dir(args.out, formats, args.overwrite, annotate=annotating)
        stale_tta = args.tta == AUTO and bool(stale_metrics(args.model))
        tta = (
            "none"
            if stale_tta
            else evaluated_tta(args.model, "--tta auto")
            if args.tta == AUTO
            else args.tta
        )
        temperature, temperature_source = (
            (1.0, "--uncalibrated") if args.uncalibrated else model_temperature(args.model, tta)
        )
        classes, classes_source = (
            (None, "--uncalibrated") if args.uncalibrated else model_classes(args.model)
        )
        model = open_model(args.model, args.backend)
        if args.out and args.overwrite:
            clear_out_dir(Path(args.out))
    except (ConfigError, DataError) as error:
        _remove_empty(made)  # the checks' own folders, when the model then failed to load
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else None
    stale = None if args.uncalibrated else stale_metrics(args.model)
    outside = None if args.uncalibrated else outside_note(args.model)
    for note in (training_note(args.model), health_note(args.model), stale, outside):
        if note:
            print(f"note: {note}", file=sys.stderr)
    if stale_tta:
        print(
            "test-time augmentation: none, the plain view (--tta auto reads notebook 05's "
            "choice from metrics that describe an earlier training of the model)",
            file=sys.stderr,
        )
    elif args.tta == AUTO:
        print(f"test-time augmentation: {tta} (as notebook 05 evaluated it)", file=sys.stderr)
    calibration = calibration_lines(args, classes, classes_source, temperature, temperature_source)
    for line in [] if stale else calibration:
        print(line, file=sys.stderr)
    if args.detect:
        smaller = (
            f"; faces under {detector.min_face_share:g} of an image's shorter side are not "
            "looked for (--min-face-share 0: every face)"
            if detector.min_face_share > 0
            else ""
        )
        print(
            f"face crops: margin {margin:g} of the face box per side ({margin_source}){smaller}",
            file=sys.stderr,
        )
    try:
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
                temperature=temperature,
                annotate_dir=(out / ANNOTATED) if out and annotating else None,
                explain=args.explain,
                exclude=own_outputs(out) if out else [],
                smooth=args.smooth,
                classes="all" if classes is None else classes,
            )
        _report(table, detector.min_face_share if args.detect else 0.0, args.detect)
        uncropped = None if args.detect else uncropped_line(table)
        if uncropped:
            print(uncropped, file=sys.stderr)
        if args.smooth and table["frame"].notna().any():  # said where a video was read
            print(
                f"videos: each followed face averaged over {args.smooth:g} s (--smooth); its "
                "confidence is then its class's mean probability over that time, not one frame's",
                file=sys.stderr,
            )
        for name in table.attrs.get("unsmoothed", []):
            print(f"{name}: states no frame rate, so its faces are not smoothed", file=sys.stderr)
        summary = table.attrs["summary"]
        videos = video_summary(table)
        for line in summary_lines(videos, table):
            print(line)
        if out is not None:
            written = write_outputs(table, out, formats)
            written += write_videos(table, videos, out)
            print(
                "wrote "
                + ", ".join(str(p) for p in written)
                + (f", {out / ANNOTATED}/" if annotating else "")
            )
        else:
            _print_table(table)
    except ConfigError as error:  # the output folder stopped taking files
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary_line(summary))
    return 0 if summary["with_faces"] + summary["without_faces"] else 1


def calibration_lines(
    args: argparse.Namespace,
    classes: list[int] | None,
    classes_source: str,
    temperature: float,
    temperature_source: str,
) -> list[str]:
    """What the predictor does to the expression head's probabilities, as notebook 05 scored
    and calibrated the model: the classes it chooses among, the temperature or why none."""
    lines = []
    if classes is not None:
        names = ", ".join(EXPRESSIONS[c] for c in classes)
        lines.append(
            f"classes: {len(classes)} of {len(EXPRESSIONS)} ({names}), {classes_source}; the "
            "others get probability 0 (--uncalibrated for every class)"
        )
    if temperature != 1.0:
        lines.append(
            f"confidence: temperature {temperature:.3g} ({temperature_source}); "
            "--uncalibrated for the raw softmax"
        )
    elif not args.uncalibrated:
        run, name = run_of_model(args.model)
        if calibration_fit(run.metrics_path(name)).get("modes"):
            lines.append(f"confidence: the raw softmax ({temperature_source})")
    return lines


def uncropped_line(table: pd.DataFrame) -> str | None:
    """With --no-detect each image is read as one face: say so for images far from a square
    crop (a whole photo read as one face gives a meaningless prediction)."""
    ok = table[(table["status"] == "ok") & table["frame"].isna()]
    wide = ok[np.maximum(ok["box_w"], ok["box_h"]) > 1.3 * np.minimum(ok["box_w"], ok["box_h"])]
    if wide.empty:
        return None
    shown = ", ".join(
        f"{row.file} ({row.box_w:.0f}x{row.box_h:.0f})" for row in wide.head(3).itertuples()
    )
    more = f" and {len(wide) - 3} more" if len(wide) > 3 else ""
    return (
        f"--no-detect read each image as one face crop, but {shown}{more} is far from square: "
        "leave --no-detect out to find the faces in a photo"
    )


def _report(table: pd.DataFrame, min_face_share: float = 0.0, detect: bool = True) -> None:
    """The terminal's lines about inputs: what was skipped, left out or had no face; images
    that look like face crops in one line, not one each."""
    for row in table[table["status"] == "error"].itertuples():
        print(f"skipped: {row.error}", file=sys.stderr)
    for note in note_lines(table, inputs_only=True):  # the model's were said before
        print(note, file=sys.stderr)
    line = left_out_line(table.attrs.get("left_out", []))
    if line:
        print(line, file=sys.stderr)
    crops, inside = crop_sized(table) if detect else ({}, 0)
    for name in table.loc[table["status"] == "no_face", "file"].unique():
        if name not in crops and not (table.loc[table["file"] == name, "status"] == "ok").any():
            print(no_face_hint(name, min_face_share), file=sys.stderr)
    line = crop_sized_line(crops, inside)
    if line:
        print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
