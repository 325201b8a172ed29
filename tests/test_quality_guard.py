"""Quality guard: the custom CNN, trained briefly through the real pipeline on a task it can
learn, must score far above chance on held-out images; with shuffled labels it must not.

The task: 48 px grey noise with a bright square in one of four places, the place being the
class. Any working network learns it in a few epochs; a broken one (dead gradients, a loss
that ignores the labels, BatchNorm statistics that never catch up, a pipeline that pairs
images with the wrong labels) stays near 0.25.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.evaluation import health
from helpers.evaluation.predictions import predict_table
from helpers.train.config import TrainConfig
from helpers.train.fit import train

SIZE, PATCH, N_TRAIN, N_TEST = 48, 14, 192, 96
CORNERS = [(4, 4), (4, 30), (30, 4), (30, 30)]  # (row, column) of the patch, per class


def _images(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """n PNGs; class = where the bright patch is, balanced."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % len(CORNERS)
        image = rng.normal(90, 25, (SIZE, SIZE)).clip(0, 255)
        r, c = CORNERS[label]
        image[r : r + PATCH, c : c + PATCH] += 110
        path = folder / f"{seed}_{i}.png"
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path)
        rows.append({"id": f"{seed}_{i}", "image": str(path), "expression": label})
    return pd.DataFrame(rows)


def _held_out_accuracy(tmp: Path, shuffle_labels: bool) -> tuple[float, dict]:
    """Train on one set, score another: accuracy and helpers.evaluation.health of the
    predictions."""
    fit, val, test = (
        _images(tmp / name, n, seed)
        for name, n, seed in (("train", N_TRAIN, 0), ("val", 32, 1), ("test", N_TEST, 2))
    )
    if shuffle_labels:
        fit["expression"] = np.random.default_rng(3).permutation(fit["expression"].to_numpy())
    cfg = TrainConfig(
        model="custom_cnn",
        image_size=SIZE,
        channels=1,
        heads=("expression",),
        epochs=6,
        batch_size=16,
        n_classes=4,
        verbose=0,
        seed=0,
        early_stopping_patience=6,
    )
    result = train(cfg, fit, val, tmp / "run", resume=False)
    preds = predict_table(result.model, test, progress=False)
    accuracy = float((preds["expression_pred"] == preds["expression"]).mean())
    return accuracy, health.prediction_health(preds)


def passes_guard(accuracy: float, state: dict) -> bool:
    """The bar: three times chance on held-out images, and no collapse."""
    return accuracy >= 3 / len(CORNERS) * 0.9 and not state["collapsed"]


def test_the_custom_cnn_learns_a_learnable_task(tmp_path: Path) -> None:
    accuracy, state = _held_out_accuracy(tmp_path, shuffle_labels=False)
    assert passes_guard(accuracy, state), (accuracy, state)


@pytest.mark.parametrize("shuffle_labels", [True])
def test_the_guard_fails_a_model_trained_on_shuffled_labels(
    tmp_path: Path, shuffle_labels: bool
) -> None:
    accuracy, state = _held_out_accuracy(tmp_path, shuffle_labels)
    assert not passes_guard(accuracy, state), (accuracy, state)
    assert accuracy < 0.5
