"""helpers.inference.tta: mirror-image averaging, deterministic, landmarks mapped back, in every
entry point."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.core.errors import ConfigError
from helpers.core.landmarks import FLIP_PERMUTATION, flip_landmarks
from helpers.inference import tta

SIZE = 16


def _points(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, SIZE - 1, (68, 2)).astype(np.float32)


def _fake_model(images: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs that depend on the left half only: a mirror image changes them."""
    left = images[:, :, : SIZE // 2].mean(axis=(1, 2, 3)) / 255.0
    proba = np.stack([left, 1 - left], axis=1)
    return {"expression": proba, "valence": left[:, None] * 2 - 1}


def test_none_returns_the_plain_outputs_and_flip_averages_the_mirror() -> None:
    images = np.zeros((2, SIZE, SIZE, 1), np.float32)
    images[0, :, : SIZE // 2] = 255.0  # bright left half: mirror has it on the right
    plain = tta.predict(_fake_model, images, "none")
    np.testing.assert_allclose(plain["expression"][0], [1.0, 0.0])
    flipped = tta.predict(_fake_model, images, "flip")
    np.testing.assert_allclose(flipped["expression"][0], [0.5, 0.5])
    np.testing.assert_allclose(flipped["valence"][0], [0.0])
    np.testing.assert_allclose(flipped["expression"][1], plain["expression"][1])  # symmetric
    again = tta.predict(_fake_model, images, "flip")
    np.testing.assert_array_equal(again["expression"], flipped["expression"])


def test_landmarks_from_the_mirror_image_are_mapped_back() -> None:
    points = _points()
    # A perfect landmark model: on the mirror image it predicts the mirrored, renumbered points.
    mirrored = flip_landmarks(points, SIZE) / SIZE
    back = tta.unflip_landmarks(mirrored.reshape(1, -1), SIZE).reshape(68, 2)
    np.testing.assert_allclose(back, points / SIZE, atol=1e-6)
    assert sorted(FLIP_PERMUTATION) == list(range(68))

    def model(images: np.ndarray) -> dict[str, np.ndarray]:
        is_mirror = images[:, 0, 0, 0] > 100  # the test marks the left column of the original
        out = np.where(is_mirror[:, None], mirrored.reshape(1, -1), (points / SIZE).reshape(1, -1))
        return {"landmarks": out.astype(np.float32)}

    images = np.zeros((1, SIZE, SIZE, 1), np.float32)
    images[:, :, -1] = 255.0  # right column of the original = left column of its mirror
    averaged = tta.predict(model, images, "flip")["landmarks"].reshape(68, 2)
    np.testing.assert_allclose(averaged, points / SIZE, atol=1e-6)


def test_unknown_modes_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="tta must be one of none, flip, tencrop"):
        tta.check_tta("fivecrop")
    assert tta.check_tta(None) == "none"


def test_tta_model_wraps_any_backend() -> None:
    class Backend:
        def __init__(self) -> None:
            self.metadata = {"image_size": SIZE, "channels": 1}

        def __call__(self, images):
            return _fake_model(images)

    wrapped = tta.TTAModel(Backend(), "flip")
    assert wrapped.metadata["tta"] == "flip" and wrapped.metadata["image_size"] == SIZE
    images = np.zeros((1, SIZE, SIZE, 1), np.float32)
    images[0, :, : SIZE // 2] = 255.0
    np.testing.assert_allclose(wrapped(images)["expression"][0], [0.5, 0.5])


def test_metrics_json_keeps_the_scores_without_tta(tmp_path) -> None:
    import keras
    from PIL import Image

    from helpers.evaluation.comparison import flatten_metrics
    from helpers.evaluation.scoring import evaluate_model, headline_table
    from helpers.models.factory import build_model

    rows = []
    for i in range(12):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3), np.uint8)).save(path)
        rows.append(
            {"id": str(i), "image": str(path), "expression": i % 4, "valence": 0.1 * (i % 5) - 0.2}
        )
    table = pd.DataFrame(rows)
    keras.utils.set_random_seed(0)
    model = build_model("custom_cnn", image_size=SIZE, heads=("expression", "valence"), n_classes=4)
    scores, preds = evaluate_model(model, "m", table, tta="flip", n_boot=0)
    assert scores["tta"] == "flip" and preds.attrs["inference"]["tta"] == "flip"
    assert set(scores["without_tta"]) == {"expression", "valence", "inference"}
    assert scores["without_tta"]["inference"]["images_per_s"] > 0  # one view per face
    assert set(scores["without_tta"]["expression"]) == {"accuracy", "f1_macro"}
    row = flatten_metrics(scores)
    assert row["tta"] == "flip" and "no_tta_expression_f1_macro" in row
    plain, _ = evaluate_model(model, "m", table, n_boot=0)
    assert plain["tta"] == "none" and "without_tta" not in plain
    # In the report's table a model scored without augmentation shows its own score there.
    plain_row = flatten_metrics(plain)
    assert plain_row["no_tta_expression_f1_macro"] == plain_row["expression_f1_macro"]
    assert plain_row["no_tta_valence_ccc"] == plain_row["valence_ccc"]
    assert scores["without_tta"]["expression"]["accuracy"] == plain["expression"]["accuracy"]
    shown = headline_table(scores)
    assert list(shown.columns) == ["metric", "value", "95% CI", "without TTA"]
    kappa = shown.set_index("metric").loc["kappa"]
    assert kappa["without TTA"] == "" and len(kappa["value"].split(".")[1]) == 3


def _faces_and_model(tmp_path, n: int, seed: int) -> tuple[pd.DataFrame, object]:
    """n random face images in 3 classes as a records table, and a 3-class custom CNN."""
    import keras
    from PIL import Image

    from helpers.models.factory import build_model

    rows = []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3), np.uint8)).save(path)
        rows.append({"id": str(i), "image": str(path), "expression": i % 3})
    keras.utils.set_random_seed(seed)
    model = build_model("custom_cnn", image_size=SIZE, heads=("expression",), n_classes=3)
    return pd.DataFrame(rows), model


def test_every_mode_is_scored_on_validation_so_the_choice_is_made_there(
    tmp_path, monkeypatch
) -> None:
    from helpers.core.progress import PROGRESS_ENV
    from helpers.evaluation.scoring import (
        evaluate_model,
        tta_on_validation,
        tta_validation_table,
    )

    monkeypatch.setenv(PROGRESS_ENV, str(tmp_path / "lines"))
    table, model = _faces_and_model(tmp_path, 10, seed=0)
    block = tta_on_validation(model, table, classes=[0, 1, 2])
    # the terminal hears what starts before the minutes it can take on a large split
    assert (tmp_path / "lines").read_text().splitlines() == [
        "comparing test-time augmentation: scoring 10 validation faces in 3 modes "
        "(none, flip, tencrop) ..."
    ]
    assert block["split"] == "val" and block["n"] == 10
    assert list(block["modes"]) == list(tta.TTA_MODES)
    for mode in tta.TTA_MODES:  # each mode is the evaluation notebook 05 would make with it
        scores, _ = evaluate_model(model, "m", table, tta=mode, n_boot=0, classes=[0, 1, 2])
        assert block["modes"][mode]["expression"] == {
            "accuracy": scores["expression"]["accuracy"],
            "f1_macro": scores["expression"]["f1_macro"],
        }
    assert (tmp_path / "lines").read_text().splitlines()[1:] == [
        "scoring 10 test faces (one view) ...",
        "scoring 10 test faces (test-time augmentation flip, then one view) ...",
        "scoring 10 test faces (test-time augmentation tencrop, then one view) ...",
    ]
    assert tta_on_validation(model, table, classes=[0, 1, 2]) == block  # deterministic
    shown = tta_validation_table({"tta": "flip", "tta_validation": block})
    assert list(shown["tta"]) == list(tta.TTA_MODES)
    assert list(shown["in use"]) == [False, True, False]
    assert {"val accuracy", "val macro F1"} <= set(shown.columns)
    assert tta_on_validation(model, table.iloc[:0]) == {}
    assert tta_validation_table({"tta": "none"}).empty


def _validation(leads: dict | None = None, **modes: tuple[float, float]) -> dict:
    """A validation comparison; `leads`: each costlier mode's macro-F1 lead interval over one
    view (by default every one beyond noise)."""
    leads = leads if leads is not None else {m: (0.01, 0.05) for m in modes if m != "none"}
    return {
        "split": "val",
        "n": 10,
        "modes": {
            m: {"expression": {"f1_macro": f1, "accuracy": acc}} for m, (f1, acc) in modes.items()
        },
        "leads": {
            m: {"metric": "f1_macro", "lead": 0.03, "ci": list(ci)} for m, ci in leads.items()
        },
    }


def test_auto_chooses_the_mode_that_leads_on_validation_macro_f1() -> None:
    from helpers.evaluation.scoring import choose_tta

    assert (
        choose_tta(_validation(none=(0.5, 0.6), flip=(0.55, 0.59), tencrop=(0.52, 0.7))) == "flip"
    )
    # Accuracy breaks a macro-F1 tie; on a full tie the cheaper mode stays.
    assert choose_tta(_validation(none=(0.5, 0.6), flip=(0.5, 0.62), tencrop=(0.5, 0.61))) == "flip"
    assert choose_tta(_validation(none=(0.5, 0.6), flip=(0.5, 0.6), tencrop=(0.5, 0.6))) == "none"
    assert choose_tta(_validation(none=(0.5, 0.6), tencrop=(0.6, 0.7))) == "tencrop"
    # A costlier mode whose lead over one view is within noise is passed over.
    within = {"flip": (0.01, 0.03), "tencrop": (-0.004, 0.02)}
    assert choose_tta(
        _validation(within, none=(0.5, 0.6), flip=(0.52, 0.6), tencrop=(0.6, 0.7))
    ) == ("flip")
    assert choose_tta(_validation({}, none=(0.5, 0.6), tencrop=(0.6, 0.7))) == "none"
    # Nothing to choose on: no validation split, or no expression head.
    assert choose_tta({}) == "none"
    assert choose_tta({"modes": {"flip": {"valence": {"ccc": 0.9}}}}) == "none"


def _kept(n: int, wrong: dict[str, range]) -> dict[str, pd.DataFrame]:
    """Validation predictions by mode over n faces in 3 classes, wrong on the given faces."""
    truth = np.arange(n) % 3
    kept = {}
    for mode, rows in wrong.items():
        pred = truth.copy()
        pred[list(rows)] = (truth[list(rows)] + 1) % 3
        proba = np.full((n, 3), 0.1)
        proba[np.arange(n), pred] = 0.8
        kept[mode] = pd.DataFrame(
            {
                "id": [str(i) for i in range(n)],
                "expression": truth,
                "expression_pred": pred,
                "confidence": proba.max(axis=1),
                **{f"p_{name}": proba[:, c] for c, name in enumerate(("Neutral", "Happy", "Sad"))},
            }
        )
    return kept


def test_auto_buys_a_costlier_mode_only_with_a_lead_beyond_noise() -> None:
    """One more face right of 399 (the cost ten times) keeps one view; thirty faces mended and
    ten broken is a lead beyond noise. Both choices are explained in the comparison."""
    from helpers.evaluation.scoring import tta_for_evaluation

    faces = pd.DataFrame({"id": [str(i) for i in range(399)]})
    one_face = _kept(399, {"none": range(6), "flip": range(6), "tencrop": range(5)})
    mode, block = tta_for_evaluation(None, "auto", faces, classes=[0, 1, 2], kept=one_face)
    assert (
        block["modes"]["tencrop"]["expression"]["f1_macro"]
        > (block["modes"]["none"]["expression"]["f1_macro"])
    )
    assert mode == block["chosen"] == "none"
    assert block["leads"]["tencrop"]["ci"][0] <= 0 < block["leads"]["tencrop"]["lead"]
    assert "beyond noise" in block.get("rule", "")
    assert block["reason"].startswith("none: no costlier mode")
    real = _kept(399, {"none": range(60), "flip": range(60), "tencrop": range(30, 70)})
    mode, block = tta_for_evaluation(None, "auto", faces, classes=[0, 1, 2], kept=real)
    assert mode == "tencrop" and block["leads"]["tencrop"]["ci"][0] > 0
    assert block["reason"].startswith("tencrop: beats one view") and "95% CI" in block["reason"]
    named, block = tta_for_evaluation(None, "flip", faces, classes=[0, 1, 2], kept=real)
    assert named == "flip" and block["reason"] == "flip: named by the setting (tta)"


def test_the_lead_draws_a_persons_faces_together_where_the_records_name_people() -> None:
    """Ten-crop mends thirty faces of two people and breaks ten of others: faces drawn singly,
    that is beyond noise; with the people named, the two are drawn or missed whole, the
    interval widens past 0 and one view stays, as the test split's paired comparison would."""
    from helpers.evaluation.scoring import tta_for_evaluation

    faces = pd.DataFrame({"id": [str(i) for i in range(399)]})
    people = faces.assign(
        subject=[("KA" if i < 15 else "KM") if i < 30 else None for i in range(399)]
    )
    real = _kept(399, {"none": range(60), "flip": range(60), "tencrop": range(30, 70)})
    single, alone = tta_for_evaluation(None, "auto", faces, classes=[0, 1, 2], kept=real)
    grouped, together = tta_for_evaluation(None, "auto", people, classes=[0, 1, 2], kept=real)
    assert single == "tencrop" and grouped == together["chosen"] == "none"
    assert together["leads"]["tencrop"]["lead"] == alone["leads"]["tencrop"]["lead"]
    low, high = together["leads"]["tencrop"]["ci"]
    assert low <= 0 < alone["leads"]["tencrop"]["ci"][0]
    assert high - low > np.subtract(*alone["leads"]["tencrop"]["ci"][::-1])
    assert "a person's faces drawn together" in together["rule"]


def test_auto_evaluates_with_the_validation_leader_and_records_it(tmp_path) -> None:
    from helpers.evaluation.scoring import choose_tta, tta_for_evaluation

    table, model = _faces_and_model(tmp_path, 9, seed=1)
    classes = [0, 1, 2]
    mode, block = tta_for_evaluation(model, "auto", table, compare=False, classes=classes)
    assert set(block["modes"]) == set(tta.TTA_MODES)  # auto compares even when not asked to
    assert mode == block["chosen"] == choose_tta(block)
    # A named mode is used as it is; the comparison only when asked for.
    assert tta_for_evaluation(model, "flip", table, compare=False) == ("flip", {})
    named, compared = tta_for_evaluation(model, "tencrop", table, classes=classes)
    assert named == "tencrop" and "chosen" not in compared
    assert compared["modes"] == block["modes"]
    assert tta_for_evaluation(model, None, table.iloc[:0]) == ("none", {})
    assert tta_for_evaluation(model, "auto", table.iloc[:0]) == ("none", {})  # no validation split
    with pytest.raises(ConfigError, match="none, flip, tencrop, auto"):
        tta_for_evaluation(model, "best", table)


def test_tencrop_averages_ten_views_and_maps_crop_landmarks_back() -> None:
    size = 48
    boxes = tta.crop_boxes(size)
    assert boxes[0] == (0, 0, 44) and boxes[3] == (4, 4, 44) and boxes[4] == (2, 2, 44)
    points = np.random.default_rng(1).uniform(5, 40, (68, 2))
    for box in boxes:  # forward as a crop resized to S (pixel-centre convention), then back
        x0, y0, side = box
        in_view = ((points - [x0, y0] + 0.5) * size / side - 0.5) / size
        back = tta.uncrop_landmarks(in_view.reshape(1, -1), box, size).reshape(68, 2)
        np.testing.assert_allclose(back, points / size, atol=1e-9)

    seen = []

    def brightness(images: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(images.copy())
        mean = images.mean(axis=(1, 2, 3)) / 255.0
        return {"expression": np.stack([mean, 1 - mean], axis=1).astype(np.float32)}

    images = np.zeros((1, size, size, 1), np.float32)
    images[:, :4, :4] = 255.0  # a bright top-left corner: only some crops see it
    out = tta.predict(brightness, images, "tencrop")["expression"]
    assert len(seen) == 10 and all(v.shape == images.shape for v in seen)
    expected = np.mean([v.mean() / 255.0 for v in seen])
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-5)
    assert 0 < out[0, 0] < images.mean() / 255.0  # the crops cut most of the corner away
    np.testing.assert_array_equal(tta.predict(brightness, images, "tencrop")["expression"], out)
