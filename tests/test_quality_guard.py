"""Quality guard: the custom CNN, trained briefly through the real pipeline on a task it can
learn, must score far above chance on held-out images; with shuffled labels it must not.

The task: 48 px grey noise with a bright square in one of four places, the place being the
class. Any working network learns it in a few epochs; a broken one (dead gradients, a loss
that ignores the labels, BatchNorm statistics that never catch up, a pipeline that pairs
images with the wrong labels) stays near 0.25.

Landmarks get the same guard: the square sits anywhere, and 68 points drawn around it follow
it. A landmark head that learned must place them well inside the error of always predicting
their average place (helpers.evaluation.health.landmark_health); trained on landmarks shuffled
between images it must not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.core.landmarks import N_POINTS
from helpers.evaluation import health
from helpers.evaluation.predictions import predict_table
from helpers.train.config import TrainConfig
from helpers.train.fit import train

SIZE, PATCH, N_TRAIN, N_TEST = 48, 14, 192, 96
CORNERS = [(4, 4), (4, 30), (30, 4), (30, 30)]  # (row, column) of the patch, per class
SETS = (("train", N_TRAIN, 0), ("val", 32, 1), ("test", N_TEST, 2))  # name, images, seed


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


def _sets(make: Callable[[Path, int, int], pd.DataFrame], tmp: Path) -> list[pd.DataFrame]:
    """Training, validation and held-out test images of one task, each from its own seed."""
    return [make(tmp / name, n, seed) for name, n, seed in SETS]


def _trained_predictions(
    tmp: Path, sets: list[pd.DataFrame], heads: tuple[str, ...]
) -> pd.DataFrame:
    """The custom CNN trained for seconds on the first set (the second validating), predicting
    the third."""
    fit, val, test = sets
    cfg = TrainConfig(
        model="custom_cnn",
        image_size=SIZE,
        channels=1,
        heads=heads,
        epochs=6,
        batch_size=16,
        n_classes=4,
        verbose=0,
        seed=0,
        early_stopping_patience=6,
    )
    result = train(cfg, fit, val, tmp / "run", resume=False)
    return predict_table(result.model, test, progress=False)


def _held_out_accuracy(tmp: Path, shuffle_labels: bool) -> tuple[float, dict]:
    """Train on one set, score another: accuracy and helpers.evaluation.health of the
    predictions."""
    sets = _sets(_images, tmp)
    if shuffle_labels:
        labels = sets[0]["expression"].to_numpy()
        sets[0]["expression"] = np.random.default_rng(3).permutation(labels)
    preds = _trained_predictions(tmp, sets, ("expression",))
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


# A ring of 68 points about the square's centre; points 36 and 45 (the outer eye corners that
# normalise the NME) lie 10 px apart.
ANGLES = np.linspace(0.0, 2.0 * np.pi, N_POINTS, endpoint=False)
RING = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1) * [9.0, 7.0]
RING[36], RING[45] = (-5.0, -2.0), (5.0, -2.0)
MIDDLE = (SIZE - PATCH) // 2  # the square's corner beyond it: the lower or right half


def _located_squares(folder: Path, n: int, seed: int) -> pd.DataFrame:
    """n PNGs with the square anywhere; its 68 points follow it, the class is its quadrant."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r, c = rng.integers(4, SIZE - PATCH - 4, size=2)
        image = rng.normal(90, 25, (SIZE, SIZE)).clip(0, 255)
        image[r : r + PATCH, c : c + PATCH] += 110
        path = folder / f"{seed}_{i}.png"
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(path)
        centre = np.array([c, r], np.float32) + PATCH / 2.0  # x, y
        rows.append(
            {
                "id": f"{seed}_{i}",
                "image": str(path),
                "expression": int(
                    2 * (r >= SIZE // 2 - PATCH // 2) + (c >= SIZE // 2 - PATCH // 2)
                ),
                "landmarks": (RING + centre).astype(np.float32),
            }
        )
    return pd.DataFrame(rows)


def _held_out_landmarks(tmp: Path, shuffle_landmarks: bool) -> dict:
    """Train on one set, score another: helpers.evaluation.health's landmark verdict."""
    sets = _sets(_located_squares, tmp)
    if shuffle_landmarks:
        order = np.random.default_rng(3).permutation(len(sets[0]))
        sets[0]["landmarks"] = sets[0]["landmarks"].to_numpy()[order]
    preds = _trained_predictions(tmp, sets, ("expression", "landmarks"))
    verdict = health.prediction_health(preds)["landmarks"]
    assert verdict is not None
    return verdict


def test_the_landmark_head_learns_where_the_points_are(tmp_path: Path) -> None:
    verdict = _held_out_landmarks(tmp_path, shuffle_landmarks=False)
    assert not verdict["collapsed"], verdict
    assert verdict["nme"] < 0.5 * verdict["baseline_nme"], verdict


def test_the_guard_flags_a_landmark_head_trained_on_shuffled_points(tmp_path: Path) -> None:
    verdict = _held_out_landmarks(tmp_path, shuffle_landmarks=True)
    assert verdict["collapsed"], verdict
