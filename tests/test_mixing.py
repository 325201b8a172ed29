"""Mixup and CutMix: blended pixels and targets, the soft-target loss, both loaders, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from helpers.core.errors import ConfigError
from helpers.data.mixing import MixSettings, batch_rng, mix_batch
from helpers.models.losses import MaskedSparseCategoricalCrossentropy
from helpers.models.train_metrics import MaskedAccuracy
from helpers.train import pipeline
from helpers.train.config import TrainConfig
from helpers.train.fit import train
from helpers.train.pipeline import EpochClock, make_dataset

C = 8


def _flat_faces(n: int, side: int = 16) -> np.ndarray:
    """Face i is a flat image of value 10 * (i + 1): any pixel tells whose it is."""
    return np.stack([np.full((side, side, 1), 10.0 * (i + 1), np.float32) for i in range(n)])


def _mixed(mode: str, labels: list[int], p: float = 1.0, seed: int = 3):
    images = _flat_faces(len(labels))
    batch = mix_batch(images, np.array(labels), C, MixSettings(mode, 1.0, p), batch_rng(seed, 0, 0))
    return images, batch


def test_mixup_blends_each_face_with_its_mirror_and_the_target_alike():
    images, batch = _mixed("mixup", [0, 1, 2, 3, 4, 5])
    assert batch.mixed.all() and list(batch.partner) == [5, 4, 3, 2, 1, 0]
    for i, j in enumerate(batch.partner):
        lam = batch.lam[i]
        assert 0 < lam < 1
        np.testing.assert_allclose(
            batch.images[i], lam * images[i] + (1 - lam) * images[j], rtol=1e-6
        )
        expected = np.zeros(C, np.float32)
        expected[i] += lam
        expected[j] += 1 - lam
        np.testing.assert_allclose(batch.soft[i], expected, rtol=1e-6)
    valence = np.arange(6, dtype=np.float32)[:, None]
    np.testing.assert_allclose(
        batch.blend(valence)[:, 0], batch.lam * np.arange(6) + (1 - batch.lam) * np.arange(6)[::-1]
    )


def test_cutmix_pastes_a_box_of_the_partner_and_credits_it_by_area():
    images, batch = _mixed("cutmix", [0, 1, 2, 3, 4, 5, 6, 7])
    pasted = 0
    for i, j in enumerate(batch.partner):
        own = batch.images[i] == images[i, 0, 0, 0]
        theirs = batch.images[i] == images[j, 0, 0, 0]
        assert (own | theirs).all()  # every pixel is one face's or the other's, none blended
        share = own.mean()
        assert batch.lam[i] == pytest.approx(share)
        assert batch.soft[i, i] == pytest.approx(share) and batch.soft[i].sum() == pytest.approx(1)
        if theirs.any():  # the partner's pixels form one axis-aligned box
            ys, xs = np.nonzero(theirs[..., 0])
            assert theirs[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
            pasted += 1
    assert pasted >= 6


def test_unlabelled_pairs_and_p_zero_stay_as_they_were():
    images, batch = _mixed("mixup", [0, -1, 2, 3])  # 0 pairs with 3, 1 (unlabelled) with 2
    assert list(batch.mixed) == [True, False, False, True]
    np.testing.assert_array_equal(batch.images[1:3], images[1:3])
    assert batch.soft[1].sum() == 0 and batch.soft[2, 2] == 1  # no label: a row of zeros
    images, batch = _mixed("cutmix", [0, 1, 2, 3], p=0.0)
    assert not batch.mixed.any() and (batch.lam == 1).all()
    np.testing.assert_array_equal(batch.images, images)
    np.testing.assert_array_equal(batch.soft, np.eye(C, dtype=np.float32)[[0, 1, 2, 3]])


def test_the_same_batch_draws_the_same_blend():
    first, second, other = (
        mix_batch(_flat_faces(6), np.arange(6), C, MixSettings("cutmix", 1.0), batch_rng(*key))
        for key in ((1, 2, 3), (1, 2, 3), (1, 3, 3))
    )
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.soft, second.soft)
    assert not np.array_equal(first.soft, other.soft)


@pytest.mark.parametrize(
    "value, words",
    [
        ({"mode": "blend", "alpha": 1}, "mode"),
        ({"mode": "mixup", "alpha": 0}, "alpha"),
        ({"mode": "mixup", "alpha": float("nan")}, "alpha"),
        ({"mode": "cutmix", "alpha": 1, "p": 1.5}, "'p'|p must"),
        ({"mode": "mixup"}, "alpha"),
        ({"mode": "mixup", "alpha": 1, "beta": 2}, "beta"),
        ("mixup", "dict"),
    ],
)
def test_bad_mixing_settings_are_refused_by_name(value, words):
    with pytest.raises(ConfigError, match=words):
        MixSettings.from_value(value)
    with pytest.raises(ConfigError, match="mixing"):
        TrainConfig(model="custom_cnn", mixing=value)


def test_mixing_needs_an_expression_head_and_is_recorded_whole():
    with pytest.raises(ConfigError, match="no expression head"):
        TrainConfig(model="custom_cnn", heads=("valence",), mixing={"mode": "mixup", "alpha": 1})
    cfg = TrainConfig(model="custom_cnn", mixing={"mode": "cutmix", "alpha": 1})
    assert cfg.mixing == {"mode": "cutmix", "alpha": 1, "p": 1.0}


def test_the_loss_of_a_soft_target_is_the_blend_of_the_two_losses():
    """Cross-entropy is linear in the target: lam * CE(a) + (1 - lam) * CE(b); zero rows skipped."""
    probs = tf.nn.softmax(tf.random.stateless_normal((3, C), seed=(1, 2))).numpy()
    loss = MaskedSparseCategoricalCrossentropy(n_classes=C)
    soft = np.zeros((3, C), np.float32)
    soft[0, 2], soft[0, 5] = 0.3, 0.7
    soft[1, 4] = 1.0  # row 2 stays zeros: no label
    blended = float(loss(soft[:2], probs[:2]))
    by_label = [-np.log(probs[0, 2]) * 0.3 - np.log(probs[0, 5]) * 0.7, -np.log(probs[1, 4])]
    assert blended == pytest.approx(np.mean(by_label), rel=1e-5)
    assert float(loss(soft, probs)) == pytest.approx(blended, rel=1e-5)  # the zero row is skipped
    assert float(loss(np.array([4]), probs[1:2])) == pytest.approx(by_label[1], rel=1e-5)
    accuracy = MaskedAccuracy()
    accuracy.update_state(soft, np.eye(C, dtype=np.float32)[[5, 0, 0]])  # right, wrong, skipped
    assert float(accuracy.result()) == pytest.approx(0.5)


def _table(folder: Path, n: int = 12, labelled: bool = True) -> pd.DataFrame:
    """Flat faces of distinct values, valence = row / 100."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        Image.fromarray(np.full((24, 24, 3), 20 * (i % 12) + 5, np.uint8)).save(folder / f"{i}.png")
        rows.append(
            {
                "id": f"r{i}",
                "image": str(folder / f"{i}.png"),
                "source": "t",
                "expression": i % C if labelled else np.nan,
                "valence": i / 100,
                "arousal": 0.0,
                "landmarks": rng.uniform(0, 23, (68, 2)).astype(np.float32),
                "split": "train",
            }
        )
    return pd.DataFrame(rows)


def test_both_loaders_blend_the_same_batches_and_evaluation_is_untouched(tmp_path):
    table = _table(tmp_path / "faces")
    common = {
        "image_size": 16,
        "channels": 3,
        "batch_size": 4,
        "seed": 5,
        "mixing": {"mode": "mixup", "alpha": 1.0},
        "class_weights": {c: 1.0 + c for c in range(C)},
    }
    graph = list(make_dataset(table, training=True, epoch_clock=EpochClock(), **common))
    python = pipeline.make_pydataset(table, training=True, epoch_clock=EpochClock(), **common)
    for k, (images, targets, weights) in enumerate(graph):
        p_images, p_targets, p_weights = python[k]
        np.testing.assert_array_equal(images.numpy(), p_images)
        for head in targets:
            np.testing.assert_array_equal(targets[head].numpy(), p_targets[head])
            np.testing.assert_array_equal(weights[head].numpy(), p_weights[head])
        soft = targets["expression"].numpy()
        assert soft.shape == (4, C) and np.allclose(soft.sum(axis=1), 1)
        blended = np.isnan(targets["landmarks"].numpy()).all(axis=1)  # a blend has no landmarks
        assert blended.any() and np.isfinite(targets["landmarks"].numpy()[~blended]).all()
        assert (soft[~blended].max(axis=1) == 1).all()  # the rest keep their one-hot target
        flat = images.numpy().reshape(4, -1)
        assert (flat[~blended] % 20 == 5).all()  # and their own pixels (20 k + 5)
        assert all((row % 20 != 5).any() for row in flat[blended])  # blends do not
    plain = make_dataset(table, training=False, **common)
    images, targets, _ = next(iter(plain))
    assert targets["expression"].dtype == tf.int32 and targets["expression"].shape == (4,)


def test_training_with_mixing_runs_and_its_card_says_so(tmp_path):
    table = _table(tmp_path / "faces", n=16)
    cfg = TrainConfig(
        model="custom_cnn",
        image_size=16,
        epochs=1,
        batch_size=8,
        shared_units=8,
        verbose=0,
        heads=("expression", "valence", "landmarks"),
        mixing={"mode": "cutmix", "alpha": 1.0, "p": 0.5},
    )
    result = train(cfg, table, table.iloc[:4], tmp_path / "run")
    assert result.card["parameters"]["mixing"] == {"mode": "cutmix", "alpha": 1.0, "p": 0.5}
    history = result.history
    assert np.isfinite(history["loss"]).all() and np.isfinite(history["val_loss"]).all()
