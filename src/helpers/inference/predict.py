"""Predict expression, valence/arousal and landmarks of every face in photos, folders and videos.

Faces are found with OpenCV's bundled Haar cascade, cropped square with a margin and fed to the
model exactly as in training (helpers.core.preprocess): gray or RGB per the model, resized to its
image size, raw 0-255 floats (the model holds its own preprocessing). Faces from many images
share one batch. One row per face comes back; a file that cannot be read or has no face gets
one row saying so (`status`, `error`) and never stops the others.

With `explain` (Keras models only), each annotated image gets a twin, `<name>_gradcam.jpg`,
with every face's Grad-CAM heatmap of its predicted expression (helpers.inference.explain).

Notebook API: `predict_images(model_or_path, inputs) -> DataFrame` and `annotate(image, rows)`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from helpers.core import trained
from helpers.core.errors import ConfigError, DataError, os_reason
from helpers.core.faces import DEFAULT_MARGIN, MARGIN_RANGE, MIN_FACE_SHARE, Detector, crop_face
from helpers.core.images import ZIP_SCHEME
from helpers.core.jsonio import read_json
from helpers.core.labels import expression_color
from helpers.core.landmarks import from_model_output
from helpers.core.preprocess import as_rgb, to_model_input
from helpers.core.progress import bar as progress_bar
from helpers.core.run_folder import RunFolder
from helpers.inference.calibration import (
    CalibratedModel,
    calibration_fit,
    check_temperature,
    fitted_temperature,
    range_edge_note,
    scored_classes,
)
from helpers.inference.explain import Explainer, overlay
from helpers.inference.names import OutputNames
from helpers.inference.runtime import Backend, KerasModel, open_model
from helpers.inference.sources import (
    Source,
    expand_inputs,
    iter_frames,
    printable,
    read_quietly,
)
from helpers.inference.tta import TTAModel, check_tta
from helpers.inference.video import check_smooth, smooth_tracks, track_faces

if TYPE_CHECKING:
    pass

STATUSES = ("ok", "no_face", "error")  # the `status` column


# --------------------------------------------------------------------------- models


# --------------------------------------------------------------------------- inputs


# --------------------------------------------------------------------------- detection


# --------------------------------------------------------------------------- preprocessing


# --------------------------------------------------------------------------- prediction


def _columns(meta: Mapping[str, Any], written: Sequence[str] = ()) -> list[str]:
    """Output columns for this model's heads, fixed so every table has the same layout, and
    at the end the output files each row's face is drawn in (`annotated`, `gradcam`) where
    they are written."""
    heads = meta["heads"]
    cols = ["file", "frame", "time", "face", "track", "status", "error"]
    cols += ["box_x", "box_y", "box_w", "box_h"]
    if "expression" in heads:
        cols += ["expression", "confidence"] + [f"p_{name}" for name in meta["labels"]]
    cols += [h for h in ("valence", "arousal") if h in heads]
    return cols + (["landmarks"] if "landmarks" in heads else []) + list(written)


@dataclass
class _Annotated:
    """Where the annotated files of one run go: a name per input, claimed when its first file
    is written, never one another input's file has (helpers.inference.names)."""

    folder: Path
    explain: bool = False
    names: OutputNames = field(default_factory=OutputNames)
    stems: dict[str, str] = field(default_factory=dict)

    def stem(self, source: str, video: bool = False) -> str:
        """The input's stem in the folder: a photo's .jpg (and its _gradcam.jpg twin when
        explaining) or a video's .avi."""
        if source not in self.stems:
            ends = (".avi",) if video else (".jpg", "_gradcam.jpg") if self.explain else (".jpg",)
            self.stems[source] = self.names.claim(_stem(source), *ends)
        return self.stems[source]

    def shown(self, path: Path) -> str:
        """A written file as the table names it: from the folder above annotated/ (--out)."""
        return f"{self.folder.name}/{path.name}"


@dataclass
class _Pending:
    """Faces waiting for a batch: their inputs, the rows to fill and where the crops came from."""

    inputs: list[np.ndarray] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    regions: list[tuple[int, int, int, int]] = field(default_factory=list)
    heatmaps: list[np.ndarray] = field(default_factory=list)
    images: list[tuple[str, int | None, np.ndarray, list[dict[str, Any]]]] = field(
        default_factory=list
    )
    written: list[Path] = field(default_factory=list)  # the annotated files, in order


def _fill(
    rows: list[dict[str, Any]],
    regions: list,
    out: Mapping[str, np.ndarray],
    meta: Mapping[str, Any],
) -> None:
    """Write one batch of model outputs into its rows (probabilities, V/A, landmarks in pixels)."""
    size, labels = meta["image_size"], meta["labels"]
    for i, row in enumerate(rows):
        if "expression" in out:
            proba = np.asarray(out["expression"][i], dtype=np.float64)
            best = int(np.argmax(proba))
            row["expression"], row["confidence"] = labels[best], float(proba[best])
            row.update({f"p_{name}": float(p) for name, p in zip(labels, proba, strict=False)})
        for head in ("valence", "arousal"):
            if head in out:
                row[head] = float(np.asarray(out[head][i]).reshape(-1)[0])
        if "landmarks" in out:
            x0, y0, rw, rh = regions[i]
            pts = from_model_output(out["landmarks"][i], rw, rh, size, (x0, y0))[0]
            row["landmarks"] = np.round(pts, 2).tolist()


def _run(
    model: Backend,
    pending: _Pending,
    batch_size: int,
    annotated: _Annotated | None,
    explainer: Explainer | None = None,
) -> None:
    """Predict every pending face in batches (with Grad-CAM of the predicted class when
    explaining), then write the finished images' annotations."""
    for start in range(0, len(pending.inputs), batch_size):
        stop = start + batch_size
        batch = np.stack(pending.inputs[start:stop])
        out = model(batch)
        _fill(pending.rows[start:stop], pending.regions[start:stop], out, model.metadata)
        if explainer is not None:
            target = np.argmax(np.asarray(out["expression"]), axis=1)
            pending.heatmaps.extend(explainer(batch, target=target, batch_size=batch_size).maps)
    if annotated is not None:
        heat = {
            id(row): (h, region)
            for row, h, region in zip(pending.rows, pending.heatmaps, pending.regions, strict=False)
        }
        for name, frame, image, rows in pending.images:
            if frame is None:
                stem = annotated.stem(name)
                path = annotated.folder / f"{stem}.jpg"
                _write_jpeg(annotate(image, rows), path)
                pending.written.append(path)
                for row in rows:
                    row["annotated"] = annotated.shown(path)
                twin = annotated.folder / f"{stem}_gradcam.jpg"
            else:  # a video's frames go into its annotated video once tracked; here its heat
                stem = f"{annotated.stem(name, video=True)}_f{frame:06d}_gradcam"
                twin = annotated.folder / f"{annotated.names.claim(stem, '.jpg')}.jpg"
            if explainer is not None:
                _save_heatmaps(image, rows, heat, twin)
                pending.written.append(twin)
                for row in rows:
                    row["gradcam"] = annotated.shown(twin)
    for done in (pending.inputs, pending.rows, pending.regions, pending.heatmaps, pending.images):
        done.clear()


def _save_heatmaps(
    image: np.ndarray,
    rows: list[dict[str, Any]],
    heat: dict[int, tuple[np.ndarray, tuple[int, int, int, int]]],
    path: Path,
) -> Path:
    """<annotated stem>_gradcam.jpg: each face's heatmap over its crop, boxes and labels on top
    (landmarks left out, so the heat stays visible)."""
    canvas = as_rgb(image, "<image>")
    for row in rows:
        if id(row) in heat:
            canvas = overlay(canvas, *heat[id(row)])
    plain = [{k: v for k, v in row.items() if k != "landmarks"} for row in rows]
    _write_jpeg(annotate(canvas, plain), path)
    return path


def _faces(
    image: np.ndarray, detector: Detector | None, margin: float
) -> list[tuple[np.ndarray, tuple[int, ...], tuple[int, int, int, int]]]:
    """(crop, detected box, crop region) per face; the whole image when detection is off."""
    if detector is None:
        h, w = image.shape[:2]
        return [(image, (0, 0, w, h), (0, 0, w, h))]
    found = []
    for box in detector(image):
        crop, region = crop_face(image, box, margin)
        found.append((crop, tuple(int(v) for v in box), region))
    return found


def _knows(run: RunFolder, name: str) -> bool:
    """Whether a folder looks like the run that trained the named model."""
    return any(p.is_file() for p in (run.card_path(name), run.metrics_path(name), run.manifest))


def run_of_model(model_path: str | os.PathLike) -> tuple[RunFolder, str]:
    """The run folder a model file sits in and the model's name: <run>/models/<m>.keras or
    <run>/export/<m>[.int8].tflite. The path is made absolute first, so a bare name or ./name
    keeps its run; a link is followed to its target's run, or kept where it is when only the
    link's own folder knows the model."""
    typed = Path(os.path.abspath(model_path))
    candidates = [
        (RunFolder(p.parent.parent), p.name.split(".")[0]) for p in (typed.resolve(), typed)
    ]
    return next((c for c in candidates if _knows(*c)), candidates[0])


def training_margin(model_path: str | os.PathLike) -> tuple[float, str]:
    """The crop margin that frames faces as the model's training faces were framed (its card's
    `face_framing`, measured by notebook 04), and where it came from: the demo's 0.2 for a
    FER-2013 model shrinks the face to 71% of what it learned on and costs accuracy."""
    run, name = run_of_model(model_path)
    card = run.card_path(name)
    try:
        framing = read_json(card).get("face_framing") if card.is_file() else None
    except DataError:
        framing = None
    margin = framing.get("margin") if isinstance(framing, dict) else None
    if isinstance(margin, (int, float)) and MARGIN_RANGE[0] <= margin <= MARGIN_RANGE[1]:
        return float(margin), f"the framing of its training faces ({card.name})"
    return DEFAULT_MARGIN, "the default: no measured framing in the model's card"


def stale_metrics(model_path: str | os.PathLike) -> str | None:
    """A sentence when the metrics JSON of a model file's run scored an earlier training of it
    (notebook 04 run again since notebook 05): its temperature, classes and health then describe
    other weights and are not applied; None when they match or the metrics recorded nothing."""
    run, name = run_of_model(model_path)
    metrics = run.metrics_path(name)
    if not metrics.is_file():
        return None
    scores = read_json(metrics)
    if not isinstance(scores, dict) or trained.same_training(run, name, scores) is not False:
        return None
    return (
        f"{metrics.parent.name}/{metrics.name} describes an earlier training of {name}, so its "
        "temperature, classes and health are not applied (the raw softmax over every class): "
        f"run notebook 05 again (model = '{name}')"
    )


def model_temperature(model_path: str | os.PathLike, tta: str = "none") -> tuple[float, str]:
    """The expression head's temperature for a model file predicting with test-time
    augmentation `tta` (its run's metrics JSON, fitted on the validation split by notebook 05)
    and where it came from; 1 (the raw softmax) where none was fitted for that mode, or the
    metrics describe an earlier training of the model (stale_metrics)."""
    stale = stale_metrics(model_path)
    if stale:
        return 1.0, stale
    run, name = run_of_model(model_path)
    metrics = run.metrics_path(name)
    temperature = fitted_temperature(metrics, check_tta(tta))
    fit = calibration_fit(metrics)
    if temperature is None:
        fitted = (
            f"; notebook 05 fitted one for {', '.join(fit['modes'])}" if fit.get("modes") else ""
        )
        return 1.0, f"none fitted for tta {tta} in the model's run{fitted}"
    faces = f"{fit['n']} validation faces" if fit.get("n") else "the validation split"
    source = f"fitted on {faces} ({metrics.parent.name}/{metrics.name})"
    edge = range_edge_note(temperature)
    if edge:
        source += f"; {edge}"
    return temperature, source


def model_classes(model_path: str | os.PathLike) -> tuple[list[int] | None, str]:
    """The expression classes a model file predicts among, as notebook 05 scored it (its run's
    metrics JSON: the classes its data has, e.g. FER-2013's 7) and where that came from; None
    (every class of its head) for a model outside a run folder or scored on every class, or
    whose metrics describe an earlier training of it (stale_metrics)."""
    stale = stale_metrics(model_path)
    if stale:
        return None, stale
    run, name = run_of_model(model_path)
    metrics = run.metrics_path(name)
    classes = scored_classes(metrics)
    if classes is None:
        return None, "every class of its expression head"
    return classes, f"as notebook 05 scored it ({metrics.parent.name}/{metrics.name})"


def check_args(margin: float, batch_size: int, every: int, flags: bool = False) -> None:
    """Bad settings fail before the model is loaded or any file is read; with flags the
    message names the command-line option (--every) rather than the argument (every)."""

    def named(name: str) -> str:
        return f"--{name.replace('_', '-')}" if flags else name

    if not isinstance(margin, (int, float)) or not MARGIN_RANGE[0] <= margin <= MARGIN_RANGE[1]:
        raise ConfigError(
            f"{named('margin')} must be a number in [0, 2] (share of the face box), got {margin!r}"
        )
    for name, value in (("batch_size", batch_size), ("every", every)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{named(name)} must be an integer >= 1, got {value!r}")


def check_inputs(inputs: Any) -> Any:
    """predict_images' inputs as expand_inputs takes them (an iterable read once, as a list);
    anything else a one-line ConfigError saying what is accepted. Arrays are RGB (OpenCV's
    BGR frames: cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)); a Pillow image is read by its mode."""
    one = (str, os.PathLike, np.ndarray, Image.Image)
    if isinstance(inputs, one):
        return inputs
    items = list(inputs) if isinstance(inputs, Iterable) and not isinstance(inputs, bytes) else None
    odd = None if items is None else next((i for i in items if not isinstance(i, one)), None)
    if items is None or odd is not None:
        got = type(inputs if items is None else odd).__name__
        raise ConfigError(
            "inputs must be a path (str or Path: an image, folder or video), an RGB image "
            f"array, a Pillow image, or a list of those; got {got}"
        )
    return items


def check_classes(classes: Any, labels: Sequence[str]) -> list[int]:
    """predict_images' classes (indices or names of the expression head's classes) as indices;
    anything else a one-line ConfigError listing what is accepted. A lone index or name is a
    list of one."""
    lone = isinstance(classes, (int, np.integer)) or (
        isinstance(classes, str) and classes in labels
    )
    wanted = [classes] if lone else classes
    accepted = f"indices 0-{len(labels) - 1} or names of {', '.join(labels)}"
    if not isinstance(wanted, Iterable) or isinstance(wanted, (str, bytes)):
        raise ConfigError(f"classes must be 'auto', 'all' or class {accepted}; got {classes!r}")
    indices = []
    for item in wanted:
        if isinstance(item, str) and item in labels:
            indices.append(list(labels).index(item))
        elif (
            isinstance(item, (int, np.integer))
            and not isinstance(item, bool)
            and 0 <= item < len(labels)
        ):
            indices.append(int(item))
        else:
            raise ConfigError(f"classes: {item!r} is not one of the class {accepted}")
    if not indices:
        raise ConfigError(f"classes: give at least one class ({accepted}), or 'all'")
    return indices


def predict_images(
    model_or_path: Any,
    inputs: Any,
    *,
    detect: bool = True,
    margin: float | None = None,
    batch_size: int = 64,
    every: int = 10,
    backend: str | None = None,
    progress: bool = True,
    detector: Detector | None = None,
    annotate_dir: str | os.PathLike | None = None,
    tta: str = "none",
    explain: bool = False,
    exclude: Iterable[str | os.PathLike] = (),
    temperature: float | None = None,
    smooth: float = 0.0,
    classes: Sequence[int | str] | int | str = "auto",
) -> pd.DataFrame:
    """One row per face in images, folders, videos (every Nth frame) or arrays, batched.

    model_or_path: a Keras model, a .keras / .tflite file, or a TFLiteModel; backend None infers
    it, "tflite" with a Keras model converts it in memory. detect=False treats each image as
    one pre-cropped face. detector: None finds faces of at least a fifth of the image's shorter
    side (Detector(min_face_share=MIN_FACE_SHARE), as the CLI does). margin: of the face box,
    added on every side of a crop; None frames faces as the model's training faces were
    (training_margin), 0.2 for a model outside a run folder. Unreadable inputs and images
    without a face come back as rows with status "error" / "no_face" and the reason in
    `error`; df.attrs["summary"] counts them. df.attrs["annotated"] lists the files this call
    wrote to annotate_dir, in order (not those an earlier call left there). df.attrs["notes"]
    names the inputs read in part (a multi-page or animated image read by its first frame, a
    video that ends before the frame count its container states).
    A video's rows carry `frame`, `time` (seconds, where the file states its frame rate) and
    `track`, the same number for one face from frame to frame (helpers.inference.video).
    tta: "flip" averages each face's outputs with its mirror image's (helpers.inference.tta).
    annotate_dir: write each photo with faces, and each video, annotated there, one file per
    input (a name an earlier input took gets -2, -3...); the `annotated` column names each
    row's file from annotate_dir's parent (annotated/a.jpg).
    explain: with annotate_dir, also write each annotated image with its faces' Grad-CAM
    heatmaps (the predicted expression), `<name>_gradcam.jpg`, named in a `gradcam` column;
    Keras models only.
    exclude: files and folders left out when an input folder holds them (annotate_dir always is);
    the files a folder holds that are neither an image nor a video (by their first bytes, or
    their extension) are listed in df.attrs["left_out"]; OS junk (`._name`, .DS_Store) is not.
    temperature: divides the expression head's log-probabilities (helpers.inference.calibration);
    None uses the one notebook 05 fitted for a model file in its run folder under this `tta`
    (model_temperature), 1 for a model object or where none was fitted; 1.0: the raw softmax.
    classes: the expression classes the model chooses among, as indices or names, or one
    index or name (the rest get probability 0);
    "auto": for a model file, those notebook 05 scored it on (model_classes: the classes of
    its data, as the temperature was fitted), every class for a model object; "all": every
    class of its head.
    smooth: seconds of video each followed face's outputs are averaged over, centred on the
    frame (helpers.inference.video.smooth_tracks; the annotated video shows the means); 0: none.
    """
    is_file = isinstance(model_or_path, (str, os.PathLike))
    if margin is None:
        margin = training_margin(model_or_path)[0] if is_file else DEFAULT_MARGIN
    tta = check_tta(tta)
    if temperature is None:
        temperature = model_temperature(model_or_path, tta)[0] if is_file else 1.0
    whole = isinstance(classes, str) and classes in ("auto", "all")
    chosen: Any = None if whole else classes  # a lone name or index: check_classes wraps it
    if classes == "auto" and is_file:
        chosen = model_classes(model_or_path)[0]
    check_args(margin, batch_size, every)
    check_smooth(smooth)
    temperature = check_temperature(temperature)
    if explain and annotate_dir is None:
        raise ConfigError("explain writes heatmap images: it needs annotate_dir (--out)")
    if detector is not None and not callable(detector):
        raise ConfigError(
            "detector must be a helpers.core.faces.Detector (or a function from an image to "
            f"x, y, w, h boxes), got {type(detector).__name__}"
        )
    inputs = check_inputs(inputs)
    detector = (detector or Detector(min_face_share=MIN_FACE_SHARE)) if detect else None
    model = open_model(model_or_path, backend)
    if chosen is not None and "expression" in model.metadata["heads"]:
        chosen = check_classes(chosen, model.metadata["labels"])
    explainer = None
    if explain:
        if not isinstance(model, KerasModel):
            raise ConfigError(
                "Grad-CAM needs a Keras .keras model: a TFLite model carries no gradients"
            )
        explainer = Explainer(model.model)
        if "expression" not in explainer.heads:
            raise ConfigError(
                "Grad-CAM in the predictor explains the expression head; this model has none"
            )
    if tta != "none":
        model = TTAModel(model, tta)
    if temperature != 1.0 or chosen is not None:
        model = CalibratedModel(model, temperature, chosen)
    meta = model.metadata
    size, channels = meta["image_size"], meta["channels"]
    out_dir = None if annotate_dir is None else Path(annotate_dir)
    annotated = None if out_dir is None else _Annotated(out_dir, explainer is not None)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    left_out: list[str | Path] = []
    skip = [*exclude, *([out_dir] if out_dir is not None else [])]
    sources = expand_inputs(inputs, exclude=skip, left_out=left_out)
    rows: list[dict[str, Any]] = []
    notes: dict[str, list[str]] = {}
    pending = _Pending()
    for source in progress_bar(sources, desc="predicting", unit="file", disable=not progress):
        found: list[str] = []
        try:
            for frame, time, image in read_quietly(iter_frames(source, every, found)):
                faces = _faces(image, detector, margin)
                if not faces:
                    rows.append(
                        {
                            "file": source.name,
                            "frame": frame,
                            "time": time,
                            "status": "no_face",
                            "error": "no face found",
                        }
                    )
                    continue
                face_rows = []
                for k, (crop, box, region) in enumerate(faces):
                    row = {
                        "file": source.name,
                        "frame": frame,
                        "time": time,
                        "face": k,
                        "status": "ok",
                        "box_x": box[0],
                        "box_y": box[1],
                        "box_w": box[2],
                        "box_h": box[3],
                    }
                    rows.append(row)
                    face_rows.append(row)
                    pending.inputs.append(to_model_input(crop, size, channels))
                    pending.rows.append(row)
                    pending.regions.append(region)
                if out_dir is not None and (frame is None or explainer is not None):
                    pending.images.append((source.name, frame, image, face_rows))
                if len(pending.inputs) >= batch_size:
                    _run(model, pending, batch_size, annotated, explainer)
        except DataError as error:
            rows.append(_error_row(source, error))
        except OSError as error:  # EIO, permission denied: this file only
            why = error.strerror or type(error).__name__
            rows.append(_error_row(source, DataError(source.name, f"cannot be read ({why})")))
        except cv2.error as error:  # a decoder/codec failure inside OpenCV: this file only
            problem = " ".join(str(error).split())[-200:]
            rows.append(_error_row(source, DataError(source.name, f"OpenCV failed: {problem}")))
        if found:
            notes[printable(source.name)] = found
    _run(model, pending, batch_size, annotated, explainer)
    written = [] if annotated is None else ["annotated"] + (["gradcam"] if explain else [])
    table = _table(rows, meta, written)
    if smooth:  # the table is copied only where a window asks for it
        table = smooth_tracks(table, smooth)
    if annotated is not None:
        for source in sources:
            mine = table["file"] == printable(source.name)
            if source.kind == "video" and mine.any():
                video = _save_annotated_video(source, table, every, annotated)
                if video is not None:
                    pending.written.append(video)
                    table.loc[mine, "annotated"] = printable(annotated.shown(video))
    table.attrs["summary"] = {**summarize(table), "read_in_part": len(notes)}
    table.attrs["notes"] = notes
    table.attrs["model"] = dict(meta)
    table.attrs["left_out"] = [str(p) for p in left_out]
    table.attrs["annotated"] = list(pending.written)
    return table


def _error_row(source: Source, error: DataError) -> dict[str, Any]:
    """An unreadable input's row, the error naming the file as the terminal shows it."""
    return {"file": source.name, "status": "error", "error": str(error)}


def _table(
    rows: list[dict[str, Any]], meta: Mapping[str, Any], written: Sequence[str] = ()
) -> pd.DataFrame:
    """Rows in a frame with fixed columns and nullable integers (frame is None for stills);
    names that are not UTF-8 made printable, so one odd name cannot stop the table."""
    for row in rows:
        for col in ("file", "error", "annotated", "gradcam"):
            if isinstance(row.get(col), str):
                row[col] = printable(row[col])
    table = pd.DataFrame(rows, columns=_columns(meta, written))
    for col in written:
        table[col] = table[col].astype(object)
    for col in ("frame", "face", "box_x", "box_y", "box_w", "box_h"):
        table[col] = pd.array(table[col], dtype="Int64")
    table["time"] = pd.to_numeric(table["time"]).astype("float64")
    table["track"] = track_faces(table)
    for col in ("file", "status"):
        table[col] = table[col].astype(object)
    if "landmarks" in table:
        table["landmarks"] = pd.Series(
            [v if isinstance(v, list) else None for v in table["landmarks"]], dtype=object
        )
    return table


def summarize(table: pd.DataFrame) -> dict[str, int]:
    """Counts per input file (not per frame): read with a face, read without any, unreadable."""
    per_file = table.groupby("file", sort=False)["status"].agg(set)
    return {
        "files": len(per_file),
        "with_faces": int(sum("ok" in s for s in per_file)),
        "without_faces": int(sum(s == {"no_face"} for s in per_file)),
        "errors": int(sum("error" in s for s in per_file)),
        "faces": int((table["status"] == "ok").sum()),
    }


def summary_line(summary: Mapping[str, int]) -> str:
    """One line for the CLI and notebooks; inputs read in part (their notes say how) counted
    too, so a cut-short video is not taken for a whole one."""
    part = summary.get("read_in_part", 0)
    return (
        f"{summary['files']} input(s): {summary['with_faces']} with faces "
        f"({summary['faces']} face(s)), {summary['without_faces']} without a face, "
        f"{summary['errors']} could not be read"
        + (f"; {part} read in part (see the notes)" if part else "")
    )


def note_lines(table: pd.DataFrame) -> list[str]:
    """One line per input read in part: `note: clip.avi: decoded 10 of 30 stated frames ...`."""
    return [
        f"note: {name}: {note}"
        for name, notes in table.attrs.get("notes", {}).items()
        for note in notes
    ]


# --------------------------------------------------------------------------- annotation


def _colour(row: Mapping[str, Any]) -> tuple[int, int, int]:
    """The class's colour of every figure (helpers.core.labels), so a class looks the same in
    annotated photos, the report and a video's timeline; yellow-green for no expression head."""
    name = row.get("expression")
    if not isinstance(name, str):
        return (160, 255, 0)
    code = expression_color(name).lstrip("#")
    return (int(code[0:2], 16), int(code[2:4], 16), int(code[4:6], 16))


# Smaller images (a 48 px FER crop) are enlarged before drawing, so labels stay legible.
ANNOTATE_MIN_SIDE = 480


def label_text(row: Mapping[str, Any]) -> str | None:
    """What a face's box is labelled with: its track in a video (#0), expression, confidence."""
    label = row.get("expression")
    if not isinstance(label, str):
        return None
    track = row.get("track")
    prefix = "" if track is None or pd.isna(track) else f"#{int(track)} "
    return f"{prefix}{label} {float(row.get('confidence', math.nan)):.2f}"


def annotate(image: np.ndarray, rows: Any, enlarge: bool = True) -> np.ndarray:
    """A copy of the RGB image with each face's box, label, confidence and landmarks drawn;
    an image smaller than ANNOTATE_MIN_SIDE is enlarged by a whole factor first (enlarge=False:
    a video's frames keep their size)."""
    canvas = as_rgb(image, "<image>").copy()
    k = max(1, math.ceil(ANNOTATE_MIN_SIDE / max(canvas.shape[:2]))) if enlarge else 1
    if k > 1:
        canvas = cv2.resize(canvas, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)
    records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
    scale = max(canvas.shape[:2]) / 640.0
    thick = max(1, round(2 * scale))
    for row in records:
        if row.get("status", "ok") != "ok" or pd.isna(row.get("box_x")):
            continue
        x, y, w, h = (int(row[key]) * k for key in ("box_x", "box_y", "box_w", "box_h"))
        colour = _colour(row)
        cv2.rectangle(canvas, (x, y), (x + w - 1, y + h - 1), colour, thick)
        text = label_text(row)
        if text is not None:
            font = 0.5 * max(scale, 0.6)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
            ty = y - 4 if y - th - base - 4 >= 0 else y + h + th + 4
            cv2.rectangle(canvas, (x, ty - th - base), (x + tw, ty + base), colour, cv2.FILLED)
            ink = (0, 0, 0) if np.dot(colour, (0.299, 0.587, 0.114)) > 110 else (255, 255, 255)
            cv2.putText(
                canvas, text, (x, ty), cv2.FONT_HERSHEY_SIMPLEX, font, ink, thick, cv2.LINE_AA
            )
        points = row.get("landmarks")
        if isinstance(points, (list, np.ndarray)):
            for px, py in (np.asarray(points, dtype=np.float64).reshape(-1, 2) + 0.5) * k - 0.5:
                if np.isfinite(px) and np.isfinite(py):
                    cv2.circle(canvas, (round(px), round(py)), thick, colour, cv2.FILLED)
    return canvas


def _stem(name: str) -> str:
    """An input's name as an output file's stem (a zip member's own name, not the archive's)."""
    if name.startswith(ZIP_SCHEME):
        name = name.rpartition("!")[2]
    return Path(name).stem.strip("<>").replace(" ", "_") or "image"


ANNOTATED_VIDEO_FPS = 5.0  # a video without a stated frame rate is played back at this rate


def _save_annotated_video(
    source: Source, table: pd.DataFrame, every: int, annotated: _Annotated
) -> Path | None:
    """<stem>.avi in the annotated folder (Motion-JPEG): the video's sampled frames at their
    own pace, each face's box, track number, expression and landmarks drawn. The frames are
    decoded a second time, so no frame is held in memory while the faces are tracked; None
    when the video could not be read again."""
    rows = table[table["file"] == printable(source.name)]
    by_frame = {int(f): group for f, group in rows[rows["status"] == "ok"].groupby("frame")}
    path = annotated.folder / f"{annotated.stem(source.name, video=True)}.avi"
    timed = rows[(rows["frame"] > 0) & rows["time"].notna()]
    fps = ANNOTATED_VIDEO_FPS
    if len(timed):  # the sampled frames at their own pace: the video's rate over the step
        fps = float(timed["frame"].iloc[0]) / float(timed["time"].iloc[0]) / every
    writer = None
    try:
        for frame, _, image in read_quietly(iter_frames(source, every)):
            if writer is None:
                height, width = image.shape[:2]
                writer = cv2.VideoWriter(
                    str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height)
                )
                if not writer.isOpened():
                    raise ConfigError(f"{path}: cannot write the annotated video")
            if frame is not None and frame in by_frame:
                image = annotate(image, by_frame[frame], enlarge=False)
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    except (DataError, cv2.error):
        return None
    finally:
        if writer is not None:
            writer.release()
    return path


def _write_jpeg(image: np.ndarray, path: Path) -> None:
    """One output image; a folder that stops taking files (full, removed) is the output's
    problem, a ConfigError, never blamed on the input being read."""
    try:
        Image.fromarray(image).save(path, quality=92)
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot write the annotated image ({os_reason(error)})"
        ) from error


# --------------------------------------------------------------------------- output files


# --------------------------------------------------------------------------- CLI
