"""Framing: a trained model on its test faces cropped the way the predictor crops, at each margin.

    python -m benchmarks --only framing --framing-data fer2013.zip \
        --framing-model reports/<run>/models/custom_cnn.keras

The predictor (and the JAFFE and CK+ readers) find each face with the Haar cascade and crop a
square around its box, a margin of the box's side added on every side. A model sees the faces
as its training data framed them, so the margin decides whether new faces look like those. Each
test face is scaled to 192 px and set in a frame twice its side (its edges replicated), so the
cascade sees a whole face with room around it; the face is then cropped at each margin, and
scored by the model beside the face as stored, on the faces the cascade found. The margin that
reproduces the training faces' framing (helpers.core.faces.measure_framing on the training
split, what notebook 04 writes in the model's card and the predictor uses) is a row of its own.
Without --framing-data and --framing-model the full mode skips; --quick runs the demo zip's test
faces through an untrained custom CNN, to prove the script (its accuracies mean nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import Context, Skip, comparison, table

TITLE = "Framing: a model on its test faces cropped at each margin, against the faces as stored"
MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3)
FACES, QUICK_FACES = 1000, 60  # test faces sampled (seeded)
FRAMING_SAMPLE = 200  # training faces the framing is measured on


def _sample(records: Any, split: str, n: int, seed: int) -> Any:
    """Up to n records of a split (all records when the source has no such split), seeded."""
    part = records[records["split"].astype("string").str.lower() == split]
    part = part if len(part) else records
    return part.sample(n=min(n, len(part)), random_state=seed).reset_index(drop=True)


def _model(ctx: Context) -> tuple[Any, str]:
    """The model to score (a Backend) and its name for the table."""
    from helpers.inference.runtime import open_model

    if ctx.framing_model is not None:
        return open_model(ctx.framing_model, "keras"), ctx.framing_model.name
    from helpers.models.factory import build_model

    net = build_model("custom_cnn", image_size=48, channels=1, heads=("expression",), seed=0)
    return open_model(net, "keras"), "custom_cnn (untrained, --quick)"


def run(ctx: Context) -> dict[str, Any]:
    """Measure the training framing, then score the test faces as stored and at each margin."""
    from helpers.core.faces import Detector, crop_face, in_frame, largest_face, measure_framing
    from helpers.core.images import read_image
    from helpers.core.preprocess import to_model_input
    from helpers.data.datasets import read_source

    source = ctx.framing_data
    if source is None or (ctx.framing_model is None and not ctx.quick):
        if not ctx.quick:
            raise Skip(
                "needs faces and a model trained on them: python -m benchmarks --only framing "
                "--framing-data fer2013.zip --framing-model <run>/models/custom_cnn.keras"
            )
        source = ctx.demo_zip()
    records = read_source(source, progress=False).records
    model, model_name = _model(ctx)
    size, channels = model.metadata["image_size"], model.metadata["channels"]
    framing = measure_framing(
        [read_image(u) for u in _sample(records, "train", FRAMING_SAMPLE, ctx.seed)["image"]]
    )
    test = _sample(records, "test", QUICK_FACES if ctx.quick else FACES, ctx.seed)
    ctx.log(f"framing: {len(test)} test faces of {Path(source).name} through {model_name}")
    detector = Detector()
    stored, framed, boxes, labels = [], [], [], []
    for uri, label in zip(test["image"], test["expression"], strict=True):
        image = read_image(uri)
        frame = in_frame(image)
        box = largest_face(detector(frame))
        if box is None:
            continue
        stored.append(image)
        framed.append(frame)
        boxes.append(box)
        labels.append(int(label))
    if not labels:
        raise Skip(f"the cascade found none of the {len(test)} test faces")
    y = np.asarray(labels)

    def accuracy(faces: list[np.ndarray]) -> float:
        x = np.stack([to_model_input(face, size, channels) for face in faces])
        return float(np.mean(model(x)["expression"].argmax(1) == y))

    margins = sorted({*MARGINS, *([framing.margin] if framing else [])})
    rows = [["as stored", None, accuracy(stored)]]
    for margin in margins:
        crops = [crop_face(f, b, margin)[0] for f, b in zip(framed, boxes, strict=True)]
        what = "the training faces' framing" if framing and margin == framing.margin else ""
        rows.append([what or "cropped", margin, accuracy(crops)])
    by_margin = {r[1]: r[2] for r in rows[1:]}
    comparisons = []
    if framing is not None:
        comparisons.append(
            comparison(
                f"cropped at the training framing ({framing.margin:g}) vs at 0.2",
                by_margin[framing.margin],
                by_margin[0.2],
                "accuracy",
                higher_is_better=True,
                baseline_name="margin 0.2",
            )
        )
    return {
        "title": TITLE,
        "params": {
            "data": Path(source).name,
            "model": model_name,
            "test_faces": len(test),
            "found": len(y),
            "seed": ctx.seed,
        },
        "results": {
            "framing": framing.as_dict() if framing else None,
            "accuracy": {"as stored": rows[0][2], **{str(m): a for m, a in by_margin.items()}},
        },
        "comparisons": comparisons,
        "tables": [
            table(
                f"Accuracy on the {len(y)} of {len(test)} test faces the cascade found in their "
                "frames, as stored and cropped at each margin",
                ["faces", "margin (share of the box, per side)", "accuracy"],
                rows,
            )
        ],
        "notes": [
            "The frame around each face repeats the face's edge pixels, not a real scene: the "
            "cascade sees the face as stored, and a wide margin shows the model smeared edges "
            "where a photo would show hair and background.",
            f"Training framing: {framing.as_dict() if framing else 'too few faces found'}.",
        ],
    }
