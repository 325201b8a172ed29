"""helpers.evaluation.corruptions: the test faces degraded (blur, noise, dark, flat, JPEG, low
resolution, covered), each at three severities, scored again; and their place in the metrics
file, the comparison table, the figures and the methods section."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from figure_checks import check_figure
from helpers.core.records import make_records
from helpers.evaluation import corruptions
from helpers.evaluation.comparison import flatten_metrics
from helpers.reporting import plots

SIZE = 16


def _face(seed: int = 0, size: int = 48, channels: int = 1) -> np.ndarray:
    """A smooth grey pattern with detail at every scale, float 0-255, (H, W, C)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (6, 6, channels)).astype(np.float32)
    image = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(image.reshape(size, size, channels), 0, 255).astype(np.float32)


@pytest.mark.parametrize("name", corruptions.CORRUPTIONS)
def test_each_corruption_keeps_the_image_shape_and_grows_with_severity(name: str) -> None:
    for channels in (1, 3):
        image = _face(channels=channels)
        changes = []
        for severity in corruptions.SEVERITIES:
            out = corruptions.corrupt(image, name, severity, seed=7)
            assert out.shape == image.shape and out.dtype == image.dtype
            assert out.min() >= 0 and out.max() <= 255
            np.testing.assert_array_equal(out, corruptions.corrupt(image, name, severity, seed=7))
            changes.append(float(np.abs(out - image).mean()))
        assert 0 < changes[0] < changes[1] < changes[2], (name, channels, changes)


def test_a_corruption_is_relative_to_the_side_so_every_input_size_meets_the_same_one() -> None:
    large = _face(size=96)
    small = cv2.resize(large, (48, 48), interpolation=cv2.INTER_AREA)[..., None]
    for name in ("blur", "low_resolution"):
        shrunk = cv2.resize(
            corruptions.corrupt(large, name, 3), (48, 48), interpolation=cv2.INTER_AREA
        )
        direct = corruptions.corrupt(small, name, 3)[..., 0]
        assert np.abs(shrunk - direct).mean() < 0.25 * np.abs(direct - small[..., 0]).mean(), name


def test_occlusion_covers_its_share_and_noise_differs_by_image() -> None:
    image = np.full((40, 40, 1), 10.0, np.float32)
    for severity, share in zip(corruptions.SEVERITIES, (0.1, 0.2, 0.3), strict=True):
        covered = (corruptions.corrupt(image, "occlusion", severity, seed=3) == 128).mean()
        assert covered == pytest.approx(share, abs=0.03)
    first = corruptions.corrupt(image, "noise", 1, seed=1)
    assert not np.array_equal(first, corruptions.corrupt(image, "noise", 1, seed=2))


def test_an_unknown_corruption_or_severity_is_named() -> None:
    with pytest.raises(ValueError, match="unknown corruption 'rain'; valid: blur, noise"):
        corruptions.corrupt(_face(), "rain", 1)
    with pytest.raises(ValueError, match="severity must be one of"):
        corruptions.corrupt(_face(), "blur", 4)


def _brightness_model():
    """A model shaped like the factory's that calls a face Neutral when bright and Happy when
    dark: its only evidence is the mean pixel, so darkening is what it cannot stand."""
    import keras
    from keras import layers

    from helpers.models.backbones import BACKBONE_LAYER, Preprocess

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = Preprocess("custom_cnn", name="preprocess")(inputs)  # pixels / 255
    inner = keras.Input((SIZE, SIZE, 3))
    x = keras.Model(inner, layers.Rescaling(1.0)(inner), name=BACKBONE_LAYER)(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    kernel = np.zeros((3, 8), np.float32)
    kernel[:, 0], kernel[:, 1] = 20 / 3, -20 / 3
    bias = np.full(8, -30.0, np.float32)
    bias[0], bias[1] = -10.0, 10.0  # Neutral above a mean of 0.5, Happy below
    head = layers.Dense(
        8,
        activation="softmax",
        name="expression",
        kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant(bias),
    )
    return keras.Model(inputs, {"expression": head(x)}, name="bright")


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Ten bright faces labelled Neutral and ten dark ones labelled Happy."""
    folder = tmp_path_factory.mktemp("corrupt_faces")
    rows = []
    for i in range(20):
        shade, label = (230, 0) if i % 2 == 0 else (25, 1)
        path = folder / f"face{i}.png"
        Image.fromarray(np.full((SIZE, SIZE, 3), shade, np.uint8)).save(path)
        rows.append({"id": f"f{i}", "image": str(path), "source": "test", "expression": label})
    return make_records(rows)


def test_scores_under_each_corruption_find_what_the_model_cannot_stand(faces: pd.DataFrame) -> None:
    model = _brightness_model()
    block = corruptions.corruption_scores(
        model, faces, n=16, batch_size=8, classes=[0, 1], progress=False
    )
    assert block["n"] == 16 and block["tta"] == "none"
    assert set(block["results"]) == set(corruptions.CORRUPTIONS)
    assert block["clean"]["expression"]["accuracy"] == 1.0
    dark = block["results"]["dark"]
    # bright faces x0.6 stay bright (0.54 of full scale); x0.4 and x0.25 turn them dark
    assert dark["1"]["expression"]["accuracy"] == 1.0
    assert dark["2"]["expression"]["accuracy"] == pytest.approx(0.5, abs=0.2)
    assert dark["3"]["expression"]["accuracy"] == pytest.approx(0.5, abs=0.2)
    assert block["results"]["low_contrast"]["3"]["expression"]["accuracy"] == 1.0  # flat faces
    every = [s["expression"]["accuracy"] for by in block["results"].values() for s in by.values()]
    assert block["mean"]["expression"]["accuracy"] == pytest.approx(np.mean(every))
    assert block["retained"]["expression"]["accuracy"] == pytest.approx(np.mean(every) / 1.0)
    assert block["retained"]["expression"]["accuracy"] < 1
    again = corruptions.corruption_scores(
        model, faces, n=16, batch_size=8, classes=[0, 1], progress=False
    )
    assert again == block  # the sample, the noise and the covered squares are seeded
    assert corruptions.corruption_scores(model, faces, n=0) == {}
    table = corruptions.corruption_table(block, key="accuracy")
    assert list(table.columns) == ["corruption", "clean", "severity 1", "severity 2", "severity 3"]
    assert table.set_index("corruption").loc["dark", "severity 1"] == 1.0


def test_the_comparison_table_and_the_figures_carry_the_corruptions() -> None:
    block = {
        "n": 10,
        "severities": [1, 2, 3],
        "clean": {"expression": {"accuracy": 0.8, "f1_macro": 0.6}},
        "results": {
            name: {
                str(s): {"expression": {"accuracy": 0.8 - 0.1 * s, "f1_macro": 0.6 - 0.1 * s}}
                for s in (1, 2, 3)
            }
            for name in ("blur", "noise")
        },
        "mean": {"expression": {"accuracy": 0.6, "f1_macro": 0.4}},
        "retained": {"expression": {"accuracy": 0.75, "f1_macro": 0.4 / 0.6}},
    }
    row = flatten_metrics({"model": "a", "expression": {"accuracy": 0.8}, "corruptions": block})
    assert row["corrupted_expression_f1_macro"] == 0.4
    assert row["retained_expression_f1_macro"] == pytest.approx(2 / 3)
    fig = check_figure(plots.plot_corruptions(block, title="a"), n_axes=1)
    assert len(fig.axes[0].lines) == 2
    fig = check_figure(
        plots.plot_corruption_comparison({"a": block, "b": block, "c": None}), n_axes=1
    )
    assert len(fig.axes[0].patches) == 2 * 3  # two models, clean and two corruptions
    empty = plots.plot_corruption_comparison({"a": None})
    assert "No model was scored" in empty.axes[0].texts[0].get_text()


def test_the_methods_section_describes_the_corruptions(tmp_path: Path) -> None:
    from helpers.reporting.methods import methods
    from test_methods import _metrics, _run

    scores = _metrics(
        corruptions={
            "n": 12,
            "mean": {"expression": {"f1_macro": 0.483}},
            "retained": {"expression": {"f1_macro": 0.735}},
        }
    )
    section = methods(_run(tmp_path, scores=scores))
    assert "Robustness: the 12 test images were scored again" in section.text
    assert "(Hendrycks & Dietterich, 2019)" in section.text
    assert "on the corrupted images" in section.text
    assert "macro-F1 0.483 on average (74% of its" in section.text


def test_a_stored_uint8_photo_is_corrupted_rounded_and_each_row_gets_its_own_noise() -> None:
    photo = np.clip(_face(seed=3), 0, 255).astype(np.uint8)
    for name in corruptions.CORRUPTIONS:
        out = corruptions.corrupt(photo, name, 2, seed=5)
        assert out.dtype == np.uint8 and out.shape == photo.shape
        exact = corruptions.corrupt(photo.astype(np.float32), name, 2, seed=5)
        np.testing.assert_array_equal(out, np.rint(exact).astype(np.uint8))
    rows = [corruptions.corrupt(photo, "noise", 1, seed=row) for row in range(3)]
    assert not np.array_equal(rows[0], rows[1]) and not np.array_equal(rows[1], rows[2])


def test_a_head_constant_but_for_rounding_keeps_no_share_of_its_clean_score(
    faces: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(-1, 1, len(faces))

    def predicted(model, sample, *, transform=None, **_) -> pd.DataFrame:
        """A valence head stuck at 0.2 (rounding noise on top), an arousal head that reads."""
        noise = rng.normal(0, 1e-9, len(sample))
        arousal = truth[: len(sample)] + (
            0 if transform is None else rng.normal(0, 0.5, len(sample))
        )
        return pd.DataFrame(
            {
                "valence": truth[: len(sample)],
                "valence_pred": 0.2 + noise,
                "arousal": truth[: len(sample)],
                "arousal_pred": arousal,
            }
        )

    monkeypatch.setattr(corruptions, "predict_table", predicted)
    block = corruptions.corruption_scores(None, faces, n=16, progress=False)
    assert block["retained"]["valence"]["ccc"] is None  # a share of rounding
    assert abs(block["mean"]["valence"]["ccc"]) < 1e-6  # the mean itself stays, near 0
    assert 0 < block["retained"]["arousal"]["ccc"] < 1


def test_the_reports_clean_bar_of_a_sample_is_called_the_samples() -> None:
    clean = {"expression": {"f1_macro": 0.231}}
    block = {"n": 2000, "of": 7178, "clean": clean, "results": {"blur": {"1": clean}}}
    fig = plots.plot_corruption_comparison({"custom_cnn": block})
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks[0] == "clean\n(2,000-face sample)"
    whole = plots.plot_corruption_comparison({"custom_cnn": {**block, "n": 7178}})
    assert whole.axes[0].get_xticklabels()[0].get_text() == "clean"
