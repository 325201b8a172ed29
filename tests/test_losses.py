"""Masked multi-task losses: missing targets are skipped, never faked, never poison gradients."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.core.errors import ConfigError
from helpers.core.labels import HEADS
from helpers.models.factory import build_model
from helpers.models.losses import (
    DEFAULT_LOSS_WEIGHTS,
    MaskedCCCLoss,
    MaskedMSE,
    build_losses,
    default_loss_weights,
    masked_ccc_loss,
    masked_landmark_loss,
    masked_mse,
    masked_sparse_categorical_crossentropy,
)
from helpers.models.train_metrics import MaskedAccuracy, MaskedCCC, MaskedRMSE, build_metrics

RNG = np.random.default_rng(0)
LABELS = np.array([0, -1, 3, -1, 7, 2])
PRESENT = LABELS >= 0
PROBS = tf.nn.softmax(RNG.normal(size=(6, 8))).numpy().astype("float32")
VALENCE = np.array([0.5, np.nan, -0.2, 0.9, np.nan, -0.7], "float32")
VALENCE_PRED = RNG.uniform(-1, 1, (6, 1)).astype("float32")
LANDMARKS = RNG.uniform(0, 1, (6, 136)).astype("float32")
LANDMARKS[[1, 4]] = np.nan  # two faces without landmarks
LANDMARKS_PRED = RNG.uniform(0, 1, (6, 136)).astype("float32")


def _ccc(t: np.ndarray, p: np.ndarray) -> float:
    """Reference CCC with population moments."""
    cov = np.mean((t - t.mean()) * (p - p.mean()))
    return 2 * cov / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)


def _wing(x: np.ndarray, w: float = 0.1, eps: float = 0.02) -> np.ndarray:
    c = w - w * math.log(1 + w / eps)
    return np.where(x < w, w * np.log(1 + x / eps), x - c)


def test_masked_crossentropy_equals_crossentropy_on_the_labelled_subset():
    loss = masked_sparse_categorical_crossentropy()(LABELS, PROBS)
    reference = keras.losses.SparseCategoricalCrossentropy()(LABELS[PRESENT], PROBS[PRESENT])
    np.testing.assert_allclose(float(loss), float(reference), rtol=1e-5)


def test_label_smoothing_changes_the_value_as_keras_does():
    plain = float(masked_sparse_categorical_crossentropy()(LABELS, PROBS))
    smooth = float(masked_sparse_categorical_crossentropy(label_smoothing=0.1)(LABELS, PROBS))
    onehot = keras.ops.one_hot(LABELS[PRESENT], 8)
    reference = keras.losses.CategoricalCrossentropy(label_smoothing=0.1)(onehot, PROBS[PRESENT])
    assert smooth != pytest.approx(plain)
    np.testing.assert_allclose(smooth, float(reference), rtol=1e-5)


@pytest.mark.parametrize("shape", [(6,), (6, 1)])
def test_masked_mse_equals_mse_on_the_present_subset_for_either_target_shape(shape):
    loss = masked_mse()(VALENCE.reshape(shape), VALENCE_PRED)
    present = ~np.isnan(VALENCE)
    reference = np.mean((VALENCE[present] - VALENCE_PRED[present, 0]) ** 2)
    np.testing.assert_allclose(float(loss), reference, rtol=1e-5)


def test_masked_ccc_loss_is_one_minus_ccc_on_the_present_subset():
    present = ~np.isnan(VALENCE)
    loss = masked_ccc_loss()(VALENCE, VALENCE_PRED)
    np.testing.assert_allclose(
        float(loss), 1 - _ccc(VALENCE[present], VALENCE_PRED[present, 0]), rtol=1e-4
    )


def test_ccc_of_identical_series_is_zero_loss():
    series = np.array([0.3, -0.5, np.nan, 0.8, 0.1], "float32")
    predictions = np.nan_to_num(series, nan=0.7)  # the masked-out prediction must not matter
    assert float(masked_ccc_loss()(series, predictions[:, None])) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("kind", ["mse", "l1", "wing"])
def test_landmark_losses_skip_faces_without_landmarks(kind):
    loss = masked_landmark_loss(kind)(LANDMARKS, LANDMARKS_PRED)
    present = ~np.isnan(LANDMARKS[:, 0])
    error = np.abs(LANDMARKS[present] - LANDMARKS_PRED[present])
    reference = {"mse": error**2, "l1": error, "wing": _wing(error)}[kind].mean()
    np.testing.assert_allclose(float(loss), reference, rtol=1e-5)


def test_wing_loss_is_log_shaped_for_small_errors_and_linear_for_large_ones():
    zeros = np.zeros((1, 136), "float32")
    small = float(masked_landmark_loss("wing")(zeros, np.full((1, 136), 0.01, "float32")))
    large = float(masked_landmark_loss("wing")(zeros, np.full((1, 136), 0.5, "float32")))
    assert small == pytest.approx(0.1 * math.log(1.5), rel=1e-5)
    assert large == pytest.approx(0.5 - (0.1 - 0.1 * math.log(6)), rel=1e-5)


ALL_LOSSES = {
    "crossentropy": (masked_sparse_categorical_crossentropy(0.1), np.full(4, -1), (4, 8)),
    "mse": (masked_mse(), np.full(4, np.nan, "float32"), (4, 1)),
    "ccc": (masked_ccc_loss(), np.full(4, np.nan, "float32"), (4, 1)),
    "landmark_mse": (masked_landmark_loss("mse"), np.full((4, 136), np.nan, "float32"), (4, 136)),
    "landmark_wing": (masked_landmark_loss("wing"), np.full((4, 136), np.nan, "float32"), (4, 136)),
}


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_an_all_missing_batch_gives_zero_loss_and_finite_gradients(name):
    loss_fn, y_true, shape = ALL_LOSSES[name]
    y_pred = tf.Variable(tf.nn.softmax(RNG.normal(size=shape).astype("float32")))
    with tf.GradientTape() as tape:
        loss = loss_fn(y_true, y_pred)
    gradient = tape.gradient(loss, y_pred)
    assert float(loss) == 0.0
    assert gradient is None or np.all(np.isfinite(gradient))


@pytest.mark.parametrize(
    "loss_fn,y_true,y_pred",
    [
        (masked_mse(), VALENCE, VALENCE_PRED),
        (masked_ccc_loss(), VALENCE, VALENCE_PRED),
        (masked_landmark_loss("wing"), LANDMARKS, LANDMARKS_PRED),
        (masked_sparse_categorical_crossentropy(), LABELS, PROBS),
    ],
)
def test_missing_targets_get_zero_gradient_and_no_nan(loss_fn, y_true, y_pred):
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        loss = loss_fn(y_true, variable)
    gradient = tape.gradient(loss, variable).numpy()
    missing = np.isnan(y_true) if y_true.dtype.kind == "f" else y_true < 0
    missing = missing.reshape(len(y_true), -1).any(axis=1)
    assert np.all(np.isfinite(gradient))
    assert np.all(gradient[missing] == 0) and np.any(gradient[~missing] != 0)


def test_sample_weights_weigh_present_targets_like_keras():
    weights = np.array([1.0, 5.0, 2.0, 0.5, 3.0, 1.0], "float32")
    loss = MaskedMSE()(VALENCE, VALENCE_PRED, sample_weight=weights)
    present = ~np.isnan(VALENCE)
    errors = (VALENCE[present] - VALENCE_PRED[present, 0]) ** 2
    np.testing.assert_allclose(
        float(loss), np.sum(weights[present] * errors) / present.sum(), rtol=1e-5
    )
    full = np.nan_to_num(VALENCE, nan=0.0)  # nothing missing: same as Keras' own MSE
    np.testing.assert_allclose(
        float(MaskedMSE()(full, VALENCE_PRED, sample_weight=weights)),
        float(keras.losses.MeanSquaredError()(full[:, None], VALENCE_PRED, sample_weight=weights)),
        rtol=1e-5,
    )


def test_half_precision_predictions_give_float32_losses():
    for loss_fn, y_true, y_pred in [
        (masked_mse(), VALENCE, VALENCE_PRED),
        (masked_sparse_categorical_crossentropy(), LABELS, PROBS),
    ]:
        loss = loss_fn(y_true, tf.cast(y_pred, "float16"))
        assert loss.dtype == tf.float32 and np.isfinite(float(loss))


def test_losses_survive_keras_serialisation():
    for loss in (
        masked_sparse_categorical_crossentropy(0.2, 7),
        masked_landmark_loss("wing"),
        masked_ccc_loss(),
    ):
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()


def test_build_losses_and_loss_weights():
    losses = build_losses(HEADS, va_loss="ccc", label_smoothing=0.1, landmark_loss="wing")
    assert list(losses) == list(HEADS)
    assert isinstance(losses["valence"], MaskedCCCLoss) and losses["landmarks"].kind == "wing"
    assert losses["expression"].label_smoothing == 0.1
    assert list(build_losses(("expression",))) == ["expression"]
    assert default_loss_weights(("expression", "landmarks")) == {
        "expression": DEFAULT_LOSS_WEIGHTS["expression"],
        "landmarks": DEFAULT_LOSS_WEIGHTS["landmarks"],
    }
    assert default_loss_weights(HEADS, {"valence": 0.5})["valence"] == 0.5
    for bad in [
        lambda: build_losses(("age",)),
        lambda: build_losses(va_loss="mae"),
        lambda: build_losses(landmark_loss="l2"),
        lambda: masked_landmark_loss("l2"),
        lambda: default_loss_weights(("expression",), {"valence": 1.0}),
        lambda: default_loss_weights(HEADS, {"valence": -1.0}),
        lambda: masked_sparse_categorical_crossentropy(label_smoothing=1.5),
    ]:
        with pytest.raises(ConfigError):
            bad()


def test_masked_metrics_score_present_targets_only_and_nan_when_none():
    accuracy = MaskedAccuracy()
    accuracy.update_state(LABELS, PROBS)
    expected = np.mean(PROBS[PRESENT].argmax(axis=1) == LABELS[PRESENT])
    assert float(accuracy.result()) == pytest.approx(expected)

    rmse, ccc = MaskedRMSE(), MaskedCCC()
    halves = [slice(0, 3), slice(3, 6)]  # epoch value from two batches, not a mean of batch values
    for part in halves:
        rmse.update_state(VALENCE[part], VALENCE_PRED[part])
        ccc.update_state(VALENCE[part], VALENCE_PRED[part])
    present = ~np.isnan(VALENCE)
    t, p = VALENCE[present], VALENCE_PRED[present, 0]
    assert float(rmse.result()) == pytest.approx(np.sqrt(np.mean((t - p) ** 2)), rel=1e-5)
    assert float(ccc.result()) == pytest.approx(_ccc(t, p), rel=1e-4)

    empty = MaskedRMSE()
    empty.update_state(np.full(3, np.nan), np.zeros((3, 1)))
    assert math.isnan(float(empty.result()))
    assert set(build_metrics()) == {"expression", "valence", "arousal"}


@pytest.mark.parametrize("va_loss,landmark_loss", [("mse", "mse"), ("ccc", "wing")])
def test_one_tiny_fit_with_every_head_and_a_batch_without_valence(va_loss, landmark_loss):
    model = build_model("custom_cnn", image_size=32, channels=1, seed=0)
    model.compile(
        optimizer="adam",
        loss=build_losses(HEADS, va_loss=va_loss, landmark_loss=landmark_loss),
        loss_weights=default_loss_weights(HEADS),
        metrics=build_metrics(HEADS),
    )
    n = 8
    x = RNG.uniform(0, 255, (n, 32, 32, 1)).astype("float32")
    y = {
        "expression": np.array([0, 1, -1, 3, 4, -1, 6, 7]),
        "valence": np.full(n, np.nan, "float32"),  # first batch of 4: no valence at all
        "arousal": RNG.uniform(-1, 1, n).astype("float32"),
        "landmarks": RNG.uniform(0, 1, (n, 136)).astype("float32"),
    }
    y["valence"][4:] = RNG.uniform(-1, 1, 4)
    y["landmarks"][[0, 5]] = np.nan
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
    assert all(np.isfinite(values[-1]) for name, values in history.items() if "loss" in name)
    assert np.isfinite(history["expression_accuracy"][-1])
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
