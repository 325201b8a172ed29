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

import io
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
from helpers.core.images import ZIP_SCHEME, read_image_bytes
from helpers.core.jsonio import read_json
from helpers.core.labels import EXPRESSIONS, expression_color
from helpers.core.landmarks import from_model_output
from helpers.core.preprocess import as_rgb, to_model_input
from helpers.core.progress import bar as progress_bar
from helpers.core.progress import line as progress_line
from helpers.core.run_folder import RunFolder, recorded_data
from helpers.core.words import counted
from helpers.inference.calibration import (
    CalibratedModel,
    calibration_fit,
    check_temperature,
    class_indices,
    fitted_temperature,
    range_edge_note,
    scored_classes,
)
from helpers.inference.explain import Explainer, overlay
from helpers.inference.names import OutputNames
from helpers.inference.runtime import Backend, KerasModel, TFLiteModel, open_model
from helpers.inference.sources import (
    Source,
    expand_inputs,
    iter_frames,
    printable,
    read_quietly,
)
from helpers.inference.tta import AUTO, TTA_MODES, TTAModel, check_tta
from helpers.inference.video import check_smooth, smooth_tracks, track_faces

if TYPE_CHECKING:
    pass

STATUSES = ("ok", "no_face", "error")  # the `status` column

# Keys of df.attrs["notes"] that name no input: notes on the model, and on the inputs together.
MODEL_NOTES = "<model>"
INPUTS_NOTES = "<inputs>"


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


def in_run_folder(model_path: str | os.PathLike) -> bool:
    """Whether a model file sits in the run folder that trained it (run_of_model finds the
    run's card, metrics or manifest), rather than copied out on its own or with its card."""
    return _knows(*run_of_model(model_path))


# Keys only a model card holds (helpers.train.card.make_card), never export/<model>.json, the
# deployment report of the same name (helpers.inference.deploy).
CARD_KEYS = frozenset(
    {"architecture", "parameters", "profile", "phases", "finished_at", "expression_classes"}
    | {"face_framing", "weights_sha256"}
)


def _is_card(path: Path) -> bool:
    """Whether a <name>.json beside a model file is its card rather than another file of that
    name (export/'s deployment report); an unreadable one counts, so its error names it."""
    if not path.is_file():
        return False
    try:
        found = read_json(path)
    except DataError:
        return True
    return bool(CARD_KEYS & found.keys())


def model_card(model_path: str | os.PathLike) -> Path | None:
    """A model file's card: its run's models/<name>.json, or <name>.json beside a file copied
    out of its run folder (as a model is shared: the .keras and its card) when it holds a
    card's keys (not export/'s deployment report of that name); None without one."""
    run, name = run_of_model(model_path)
    if run.card_path(name).is_file():
        return run.card_path(name)
    beside = Path(os.path.abspath(model_path)).with_name(f"{name}.json")
    return beside if _is_card(beside) else None


def card_classes(card: Path | None) -> list[int] | None:
    """The expression classes a card says its model trained on (`expression_classes`, written
    by notebook 04 from the training faces), as indices; None where it lists none or every
    class (a card from before cards listed them). A malformed list is a DataError naming it."""
    if card is None:
        return None
    classes = class_indices(read_json(card).get("expression_classes"), card)
    return None if classes is None or len(classes) == len(EXPRESSIONS) else classes


def training_margin(model_path: str | os.PathLike) -> tuple[float, str]:
    """The crop margin that frames faces as the model's training faces were framed (its card's
    `face_framing`, measured by notebook 04), and where it came from: the demo's 0.2 for a
    FER-2013 model shrinks the face to 71% of what it learned on and costs accuracy."""
    card = model_card(model_path)
    try:
        framing = read_json(card).get("face_framing") if card is not None else None
    except DataError:
        framing = None
    margin = framing.get("margin") if isinstance(framing, dict) else None
    low, high = MARGIN_RANGE
    if card is not None and isinstance(margin, (int, float)) and low <= margin <= high:
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
    if temperature is None and not in_run_folder(model_path):
        return 1.0, "none: the model is outside its run folder, whose metrics hold it"
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
    """The expression classes a model file predicts among, and where that came from: as
    notebook 05 scored it (its run's metrics JSON: the classes its data has, e.g. FER-2013's
    7); without those metrics (notebook 05 not run, or the file copied out of its run folder
    with its card), the classes its card says it trained on. None (every class of its head)
    for a model scored on every class, with neither, or whose metrics describe an earlier
    training of it (stale_metrics)."""
    stale = stale_metrics(model_path)
    if stale:
        return None, stale
    run, name = run_of_model(model_path)
    metrics = run.metrics_path(name)
    if metrics.is_file():
        classes = scored_classes(metrics)
        if classes is None:
            return None, "every class of its expression head"
        return classes, f"as notebook 05 scored it ({metrics.parent.name}/{metrics.name})"
    card = model_card(model_path)
    classes = card_classes(card)
    if classes is None or card is None:
        return None, "every class of its expression head"
    return classes, f"those it trained on ({card.name}, its card)"


def model_file(model_or_path: Any) -> Path | None:
    """The file a model was read from, so a model object predicts as its file does: a path
    itself, a TFLiteModel's file, or the `loaded_from` that helpers.models.saving.load_trained
    records on a Keras model (also behind a KerasModel); None for a model built in memory."""
    if isinstance(model_or_path, (str, os.PathLike)):
        return Path(model_or_path)
    if isinstance(model_or_path, TFLiteModel):
        return model_or_path.path
    inner = model_or_path.model if isinstance(model_or_path, KerasModel) else model_or_path
    found = getattr(inner, "loaded_from", None)
    return Path(found) if isinstance(found, (str, os.PathLike)) else None


def evaluated_tta(model_path: str | os.PathLike, named: str = "tta='auto'") -> str:
    """The test-time augmentation notebook 05 evaluated a run folder's model with, so the
    predictor gives the predictions whose accuracy the report states; `named` is how the
    message calls the setting (--tta auto on the command line)."""
    path = Path(model_path)
    modes = ", ".join(TTA_MODES)
    if not in_run_folder(path):
        raise ConfigError(
            f"{named} uses the mode notebook 05 chose for {path.name}, but the file is outside "
            f"its run folder, whose metrics name the mode: give a mode ({modes})"
        )
    run, name = run_of_model(path)
    metrics = run.metrics_path(name)
    reason = "not found"
    if metrics.is_file():
        try:
            return check_tta(read_json(metrics).get("tta"))
        except (DataError, ConfigError) as error:
            reason = str(error)
    raise ConfigError(
        f"{named} uses the mode notebook 05 chose for {path.name}, read from {metrics}: "
        f"{reason}. Evaluate the model (notebook 05) or give a mode ({modes})"
    )


def training_note(model_path: str | os.PathLike) -> str | None:
    """One sentence when the model file's run says it learned from the generated demo faces:
    on real photos such a model gives near-uniform probabilities, which looks like a broken
    tool."""
    path = Path(model_path)
    run = run_of_model(path)[0]
    try:
        if recorded_data(run).get("demo"):  # manifest.json, or notebook 01 run by hand
            return (
                f"{path.name} was trained on the generated demo faces (run {run.name} "
                "used the demo dataset); on real photos expect near-uniform probabilities. "
                "Train on real faces (./run_all.sh --data ...) for real predictions."
            )
        found = model_card(path)
        card = read_json(found) if found is not None else {}
    except (DataError, AttributeError):
        return None
    if card.get("profile") != "smoke":
        return None
    epochs = card.get("epochs_run")
    ran = f"{counted(epochs, 'epoch')}: " if isinstance(epochs, int) else ""
    return (
        f"{path.name} was trained by the smoke profile ({ran}a check that "
        "the pipeline runs, not a model); expect near-chance predictions. Train with a real "
        "profile (./run_all.sh --profile cpu, fer2013-cpu, ...) for real ones."
    )


def health_note(model_path: str | os.PathLike) -> str | None:
    """One sentence when notebook 05 found that a head of this model learned nothing (the
    metrics JSON's `health`), so its confident-looking rows are not taken at their word; None
    when those metrics scored an earlier training of the model (stale_metrics)."""
    path = Path(model_path)
    run, name = run_of_model(path)
    metrics = run.metrics_path(name)
    try:
        state = read_json(metrics).get("health") if metrics.is_file() else None
        if stale_metrics(path):
            return None
    except (DataError, AttributeError):
        return None
    if not isinstance(state, dict) or not state.get("collapsed_heads"):
        return None
    heads = [str(head) for head in state["collapsed_heads"]]
    found = [
        f"{head}: {'; '.join(map(str, reasons))}"
        for head in heads
        if isinstance(state.get(head), dict) and (reasons := state[head].get("reasons"))
    ]
    what = f" ({', '.join(found)})" if found else ""
    return (
        f"{path.name} learned nothing in its {', '.join(heads)} "
        f"head{'s' if len(heads) > 1 else ''}, metrics/{name}.json says{what}; treat "
        f"{'their' if len(heads) > 1 else 'its'} predictions as no better than a guess"
    )


def outside_note(model_path: str | os.PathLike) -> str | None:
    """One sentence when a model file is outside the run folder that trained it (copied on its
    own, or with its card beside it): notebook 05's temperature and its check that each head
    learned something stay in that folder's metrics, so say what the model predicts with
    instead and where its classes came from; None inside its run folder."""
    path = Path(model_path)
    if in_run_folder(path):
        return None
    name = run_of_model(path)[1]
    card = model_card(path)
    classes = card_classes(card)
    if classes is not None and card is not None:
        names = ", ".join(EXPRESSIONS[c] for c in classes)
        chosen = f"its {len(classes)} classes ({names}) are those its card {card.name} lists"
    elif card is not None and read_json(card).get("expression_classes"):
        chosen = f"it chooses among every class of its head, as its card {card.name} lists"
    elif card is not None:
        chosen = (
            f"its card {card.name} lists no classes it trained on, so it chooses among every "
            "class of its head"
        )
    elif path.with_name(f"{name}.json").is_file():
        chosen = (
            f"{name}.json beside it is no model card (export/ keeps the deployment report under "
            f"that name; the card is models/{name}.json of its run), so it chooses among every "
            "class of its head"
        )
    else:
        chosen = f"with no card {name}.json beside it, it chooses among every class of its head"
    return (
        f"{path.name} is outside its run folder (no metrics/{name}.json of its run), so its "
        "confidences are uncalibrated (temperature 1, the raw softmax) and no check says "
        f"whether a head learned nothing; {chosen}. Predict from its run folder for its "
        "calibration and that check"
    )


# A face crop is at most this big: an image this small with no face found is likely one.
CROP_SIDE = 160


def stored_size(name: str) -> tuple[int, int] | None:
    """An image file's (or zip member's) width and height from its header; None where it
    cannot be opened."""
    try:
        source = io.BytesIO(read_image_bytes(name)) if name.startswith(ZIP_SCHEME) else name
        with Image.open(source) as image:
            return image.size
    except (OSError, ValueError, DataError):
        return None


def crop_sized(
    table: pd.DataFrame, sizes: Mapping[str, tuple[int, int]] | None = None
) -> tuple[dict[str, tuple[int, int]], int]:
    """The still images the detector searched that look like face crops already (no side over
    CROP_SIDE; where a face was found in one, near square), with their sizes, and how many of
    them had a face found inside: on a folder of FER-style crops the detector finds a zoomed
    part of some and nothing in the others, where reading each whole (--no-detect) is right.
    sizes: each input's width and height as read; None reads the files' headers."""
    stills = table[table["frame"].isna() & (table["status"] != "error")]
    found: dict[str, tuple[int, int]] = {}
    inside = 0
    for name, rows in stills.groupby("file", sort=False):
        with_face = bool((rows["status"] == "ok").any())
        if with_face and (rows["box_w"].max() > CROP_SIDE or rows["box_h"].max() > CROP_SIDE):
            continue  # a face larger than a crop: the image is larger still
        size = stored_size(str(name)) if sizes is None else sizes.get(str(name))
        if size is None or max(size) > CROP_SIDE:
            continue
        if with_face and max(size) > 1.3 * min(size):
            continue
        found[str(name)] = size
        inside += with_face
    return found, inside


def crop_sized_line(
    sizes: dict[str, tuple[int, int]], inside: int, switch: str = "--no-detect"
) -> str | None:
    """One line for every crop-sized image of a run (crop_sized), not one per image; `switch`
    is how the reader turns detection off (detect=False in Python)."""
    if not sizes:
        return None
    shown = ", ".join(f"{name} {w}x{h}" for name, (w, h) in list(sizes.items())[:2])
    more = f" and {len(sizes) - 2} more" if len(sizes) > 2 else ""
    return (
        f"{counted(len(sizes), 'image')} of at most {CROP_SIDE} px "
        f"{'looks like a face crop' if len(sizes) == 1 else 'look like face crops'} "
        f"({shown}{more}): "
        f"{len(sizes) - inside} with no face found, {inside} with a face found inside them; "
        f"if they are already face crops, pass {switch} to read each one whole as one face"
    )


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


def _file_settings(
    model_or_path: Any,
    detect: bool,
    margin: float | None,
    tta: Any,
    temperature: float | None,
    classes: Any,
) -> tuple[Any, str, Any, Any, list[str]]:
    """Margin, test-time augmentation, temperature and classes, those left to the model (None,
    "auto") read from the run folder of the file it came from (model_file), as the command
    reads them, with the notes the command prints about the model; a model with no file gets
    the defaults and a note saying what it then lacks. Returns the classes as given or
    chosen, None for every class."""
    file = model_file(model_or_path)
    auto = isinstance(classes, str) and classes == "auto"
    every = auto or (isinstance(classes, str) and classes == "all")
    chosen: Any = None if every else classes  # a lone name or index: check_classes wraps it
    notes: list[str] = []
    if file is None:
        if isinstance(tta, str) and tta == AUTO:
            raise ConfigError(
                "tta='auto' reads the mode notebook 05 chose from the model's run folder, and "
                "this model object names no file: give the model's path (or a model loaded by "
                "helpers.models.saving.load_trained), or a mode (none, flip, tencrop)"
            )
        lacks = [
            what
            for what, left in (
                ("temperature 1 (the raw softmax)", temperature is None),
                ("every class of its head", auto),
                (f"crop margin {DEFAULT_MARGIN}", margin is None and detect),
            )
            if left
        ]
        if lacks:
            notes.append(
                f"a model object that names no file it was read from predicts with "
                f"{', '.join(lacks)}: give its .keras or .tflite path, or load it with "
                "helpers.models.saving.load_trained, for the calibration and face framing of "
                "its run"
            )
        margin = DEFAULT_MARGIN if margin is None else margin
        return margin, check_tta(tta), 1.0 if temperature is None else temperature, chosen, notes
    notes += [note for note in (training_note(file), health_note(file)) if note]
    outside = outside_note(file)
    if outside and (temperature is None or auto):
        notes.append(outside)
    stale = stale_metrics(file)
    if stale and (temperature is None or auto or tta == AUTO):
        notes.append(stale)
    if isinstance(tta, str) and tta == AUTO:
        if stale:
            notes.append(
                "test-time augmentation: none, the plain view (tta='auto' reads notebook 05's "
                "choice from metrics that describe an earlier training of the model)"
            )
        tta = "none" if stale else evaluated_tta(file)
    tta = check_tta(tta)
    if margin is None:
        margin = training_margin(file)[0]
    if temperature is None:
        temperature, source = model_temperature(file, tta)
        if range_edge_note(temperature):
            notes.append(f"confidence: temperature {temperature:.3g} ({source})")
    if auto:
        chosen = model_classes(file)[0]
    return margin, tta, temperature, chosen, notes


def _names_in(folder: Path, overwrite: bool = False) -> set[str]:
    """The names an annotation folder holds already (created if missing), so a second call
    writing there takes other names and overwrites nothing; none with overwrite, so a rerun
    (notebook 07's) replaces its own files rather than adding copies."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return set() if overwrite else {entry.name.casefold() for entry in folder.iterdir()}
    except OSError as error:
        raise ConfigError(
            f"annotate_dir {folder}: cannot create or read the folder ({os_reason(error)})"
        ) from error


def predict_line(model_path: str | os.PathLike | None, explain: bool = False) -> str:
    """What predicting starts with, for the terminal of `./run_all.sh` (notebook 07)."""
    name = Path(model_path).name if model_path is not None else "the model"
    heatmaps = " and their Grad-CAM heatmaps" if explain else ""
    return f"predicting with {name}: loading it, then finding and scoring the faces{heatmaps} ..."


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
    overwrite: bool = False,
    tta: str = "none",
    explain: bool = False,
    exclude: Iterable[str | os.PathLike] = (),
    temperature: float | None = None,
    smooth: float = 0.0,
    classes: Sequence[int | str] | int | str = "auto",
) -> pd.DataFrame:
    """One row per face in images, folders, videos (every Nth frame) or arrays, batched.

    A model file, or a model object that names its file (load_trained records it, a TFLiteModel
    keeps it), predicts as `python -m helpers.predict` does: the temperature, classes, crop
    margin and (tta="auto") test-time augmentation of its run folder; a file copied out of its
    run folder gets the classes and framing of its card beside it (<name>.json), temperature 1
    and a note saying so; a model built in memory gets temperature 1, every class and margin
    0.2, and a note saying so.

    model_or_path: a Keras model, a .keras / .tflite file, a KerasModel or TFLiteModel, or any
    Backend (helpers.inference.runtime).
    inputs: an image, folder (searched recursively) or video path, a zip of photos, an RGB
    image array (H, W[, 1|3|4]; OpenCV's BGR: cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)) or a
    batch of them (N, H, W, C), a Pillow image (read by its mode), or a list of those.
    detect: True finds the faces in each image; False reads each image as one pre-cropped face.
    margin: of the face box, added on every side of a crop; None frames faces as the model's
    training faces were (training_margin, from the model's card), 0.2 without a card.
    batch_size: faces per model call (faces from many images share one batch).
    every: a video's every Nth frame is read.
    backend: None infers it from the model; "tflite" with a Keras model converts it in memory.
    progress: a progress bar (per input file) on stderr.
    detector: None finds faces of at least a fifth of the image's shorter side
    (Detector(min_face_share=MIN_FACE_SHARE), as the CLI does); or any function from an image
    to x, y, w, h boxes.
    annotate_dir: write each photo with faces, and each video, annotated there, one file per
    input named by its stem; a name an earlier input took, or a file already in the folder
    (an earlier call's), gets -2, -3..., so nothing there is overwritten; the `annotated` column
    names each row's file from annotate_dir's parent (annotated/a.jpg).
    overwrite: True names annotate_dir's files by their inputs alone and replaces the files of
    those names already there (a rerun into the same folder, as notebook 07 does).
    tta: test-time augmentation (helpers.inference.tta): "flip" averages each face's outputs
    with its mirror image's, "tencrop" ten views'; "auto" the mode notebook 05 evaluated the
    model with (evaluated_tta: a model file, or an object naming it, in its run folder).
    explain: with annotate_dir, also write each annotated image with its faces' Grad-CAM
    heatmaps (the predicted expression), `<name>_gradcam.jpg`, named in a `gradcam` column;
    Keras models only.
    exclude: files and folders left out when an input folder holds them (annotate_dir always is).
    temperature: divides the expression head's log-probabilities (helpers.inference.calibration);
    None uses the one notebook 05 fitted for the model's file under this `tta`
    (model_temperature), 1 for a model without a file or where none was fitted; 1.0: the raw
    softmax.
    smooth: seconds of video each followed face's outputs are averaged over, centred on the
    frame (helpers.inference.video.smooth_tracks; the annotated video shows the means); 0: none.
    classes: the expression classes the model chooses among, as indices or names, or one
    index or name (the rest get probability 0); "auto": for a model with its file, those
    notebook 05 scored it on (model_classes: the classes of its data, as the temperature was
    fitted), or without its run's metrics those its card lists as trained on; every class for
    a model with neither, or without a file; "all": every class of its head.

    Unreadable inputs and images without a face come back as rows with status "error" /
    "no_face" and the reason in `error`. A video's rows carry `frame`, `time` (seconds, where
    the file states its frame rate) and `track`, the same number for one face from frame to
    frame (helpers.inference.video). df.attrs holds "summary" (counts per input file),
    "model" (its metadata), "left_out" (files an input folder holds that are neither an image
    nor a video; OS junk such as `._name` or .DS_Store is not listed), "annotated" (the files
    this call wrote to annotate_dir, in order) and "notes", lists of sentences by what they are
    about: an input read in part (a multi-page or animated image read by its first frame, a
    video that ends before the frame count its container states), "<model>" (what the command
    says of the model: trained on the demo faces or by the smoke profile, a head that learned
    nothing, a temperature at the edge of its range, metrics of an earlier training, a file
    outside its run folder, no file)
    and "<inputs>" (images searched for faces that look like face crops already: detect=False).
    note_lines(df) gives them as the command's `note:` lines.
    """
    for name, flag in (("detect", detect), ("explain", explain), ("overwrite", overwrite)):
        if not isinstance(flag, (bool, np.bool_)):
            raise ConfigError(f"{name} must be True or False, got {flag!r}")
    if annotate_dir is not None and not isinstance(annotate_dir, (str, os.PathLike)):
        raise ConfigError(
            f"annotate_dir must be a folder path (str or Path), got {type(annotate_dir).__name__}"
        )
    margin, tta, temperature, chosen, model_notes = _file_settings(
        model_or_path, bool(detect), margin, tta, temperature, classes
    )
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
    if progress:  # loading the model, finding and scoring the faces: a minute on a busy CPU
        progress_line(predict_line(model_file(model_or_path), explain))
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
    annotated = None
    if out_dir is not None:
        taken = _names_in(out_dir, bool(overwrite))
        annotated = _Annotated(out_dir, explainer is not None, OutputNames(taken))
    left_out: list[str | Path] = []
    skip = [*exclude, *([out_dir] if out_dir is not None else [])]
    sources = expand_inputs(inputs, exclude=skip, left_out=left_out)
    rows: list[dict[str, Any]] = []
    notes: dict[str, list[str]] = {}
    sizes: dict[str, tuple[int, int]] = {}  # each still's width and height, as read
    pending = _Pending()
    for source in progress_bar(sources, desc="predicting", unit="file", disable=not progress):
        found: list[str] = []
        try:
            for frame, time, image in read_quietly(iter_frames(source, every, found)):
                if frame is None:
                    sizes[printable(source.name)] = (image.shape[1], image.shape[0])
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
    crops = crop_sized_line(*crop_sized(table, sizes), switch="detect=False") if detect else None
    table.attrs["notes"] = {
        **({MODEL_NOTES: model_notes} if model_notes else {}),
        **notes,
        **({INPUTS_NOTES: [crops]} if crops else {}),
    }
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
        f"{counted(summary['files'], 'input')}: {summary['with_faces']} with faces "
        f"({counted(summary['faces'], 'face')}), {summary['without_faces']} without a face, "
        f"{summary['errors']} could not be read"
        + (f"; {part} read in part (see the notes)" if part else "")
    )


def note_lines(table: pd.DataFrame, inputs_only: bool = False) -> list[str]:
    """One line per note: `note: clip.avi: decoded 10 of 30 stated frames ...`, the model's and
    the inputs' as `note: <sentence>` (their keys name no file); inputs_only keeps those of
    single inputs (the command says the rest in its own words)."""
    return [
        f"note: {note}" if name in (MODEL_NOTES, INPUTS_NOTES) else f"note: {name}: {note}"
        for name, notes in table.attrs.get("notes", {}).items()
        if not (inputs_only and name in (MODEL_NOTES, INPUTS_NOTES))
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
