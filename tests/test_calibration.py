"""Temperature scaling of the expression head: fitted on validation (helpers.evaluation
.calibration, scoring.calibrate), kept in the metrics JSON, applied by the predictor
(helpers.inference.calibration)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.core.errors import ConfigError, DataError
from helpers.core.labels import EXPRESSIONS
from helpers.evaluation import scoring
from helpers.evaluation.calibration import calibration_block, fit_temperature
from helpers.evaluation.metrics import expected_calibration_error
from helpers.inference.calibration import (
    CalibratedModel,
    confine,
    fitted_temperature,
    scale_probabilities,
    scored_classes,
)

K = 8


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _overconfident(n: int, sharpen: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), probabilities given as softmax(sharpen * z): a model whose
    confidence is off by exactly the temperature `sharpen`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, (n, K))
    calibrated = _softmax(z)
    truth = (calibrated.cumsum(axis=1) > rng.uniform(size=(n, 1))).argmax(axis=1)
    return _softmax(sharpen * z), truth


def test_scaling_keeps_every_prediction_and_a_lacking_class_at_zero() -> None:
    proba = np.array([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.4, 0.1]])
    np.testing.assert_array_equal(scale_probabilities(proba, 1.0), proba)
    for temperature in (0.5, 2.0, 7.0):
        scaled = scale_probabilities(proba, temperature)
        np.testing.assert_allclose(scaled.sum(axis=1), 1.0)
        assert (scaled.argmax(axis=1) == proba.argmax(axis=1)).all()
        assert scaled[0, 3] == 0.0
    assert scale_probabilities(proba, 2.0)[0, 0] < 0.7 < scale_probabilities(proba, 0.5)[0, 0]


@pytest.mark.parametrize("sharpen", [2.0, 0.6])
def test_the_fit_finds_the_temperature_the_model_is_off_by(sharpen: float) -> None:
    """An over-confident model (probabilities sharpened 2x) gets temperature about 2, a timid
    one about 0.6; after it the ECE is small, before it large."""
    proba, truth = _overconfident(20_000, sharpen, seed=1)
    temperature = fit_temperature(proba, truth)
    assert temperature == pytest.approx(sharpen, rel=0.08)
    before = expected_calibration_error(proba.argmax(1) == truth, proba.max(1))
    scaled = scale_probabilities(proba, temperature)
    after = expected_calibration_error(scaled.argmax(1) == truth, scaled.max(1))
    assert before > 0.05 and after < 0.02


def test_the_block_is_fitted_on_validation_and_reports_the_test_split() -> None:
    """The temperature comes from the validation rows alone: the same validation with another
    test split gives the same temperature; rows without a label or of a class the model lacks
    are left out; NLL and ECE fall on validation and ECE on test."""
    val_proba, val_truth = _overconfident(6000, 2.0, seed=2)
    test_proba, test_truth = _overconfident(3000, 2.0, seed=3)
    block = calibration_block(val_proba, val_truth, test_proba, test_truth)
    assert block["fitted_on"] == "val" and block["n"] == 6000
    assert block["val_nll"][1] < block["val_nll"][0]
    assert block["val_ece"][1] < block["val_ece"][0] and block["test_ece"][1] < block["test_ece"][0]
    other = calibration_block(val_proba, val_truth, test_proba[:100], test_truth[:100])
    assert other["temperature"] == block["temperature"]
    lacking = val_proba.copy()
    lacking[:, 7] = 0.0  # a model without Contempt: its Contempt faces are not scored
    unlabelled = np.where(np.arange(6000) % 10 == 0, -1, val_truth)
    block = calibration_block(lacking, unlabelled, test_proba, test_truth)
    assert block["n"] == int(((unlabelled >= 0) & (unlabelled != 7)).sum())
    assert calibration_block(val_proba[:0], val_truth[:0], test_proba, test_truth) is None


def test_a_temperature_stopped_at_the_end_of_its_range_is_flagged() -> None:
    """A model no better than a uniform guess drives the fit to the top of its range: the
    block says the search stopped there rather than found an optimum."""
    val_proba, val_truth = _overconfident(3000, 2.0, seed=2)
    block = calibration_block(val_proba, val_truth, val_proba, val_truth)
    assert block["at_bound"] is None and block["range"] == [0.05, 20.0]
    rng = np.random.default_rng(0)
    guess = np.full((500, 8), 1 / 8) + rng.normal(0, 1e-3, (500, 8))
    wrong = (guess.argmax(axis=1) + 1 + rng.integers(0, 7, 500)) % 8  # never its top class
    block = calibration_block(guess, wrong, guess, wrong)
    assert block["temperature"] == pytest.approx(20.0, rel=0.01)
    assert block["at_bound"] == "upper"


def _predictions(proba: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """A predictions table as notebook 05 saves it."""
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(truth))],
            "expression": truth,
            "expression_pred": proba.argmax(axis=1),
            "confidence": proba.max(axis=1),
            **{f"p_{name}": proba[:, c] for c, name in enumerate(EXPRESSIONS)},
        }
    )


@pytest.mark.parametrize("classes", [None, list(range(7))])
def test_calibrate_writes_the_block_the_reliability_diagram_and_metrics_agree_on(
    monkeypatch: pytest.MonkeyPatch, classes: list[int] | None
) -> None:
    """scoring.calibrate predicts the validation split with the test split's augmentation and
    with one view, and fits a temperature for each; its test ECE before is the metrics JSON's
    `ece`, after it the diagram's, also where a 7-class data set confines an 8-class model's
    predictions (`classes`, as notebook 05 passes the data's classes)."""
    val_proba, val_truth = _overconfident(4000, 2.0, seed=4)
    test_proba, test_truth = _overconfident(2000, 2.0, seed=5)
    if classes is not None:  # FER-2013's seven: no Contempt face, the model still predicts it
        val_truth, test_truth = val_truth % 7, test_truth % 7
    asked = []

    def fake_predict(model, table, **kw):
        asked.append((kw["tta"], len(table)))
        return _predictions(val_proba, val_truth)

    monkeypatch.setattr(scoring, "predict_table", fake_predict)
    test = _predictions(test_proba, test_truth)
    expression = scoring.evaluate("m", test, n_boot=0, classes=classes)["expression"]
    assert bool(expression["restricted_to"]) == (classes is not None)
    val = pd.DataFrame({"id": range(4000)})
    block = scoring.calibrate(None, val, test, tta="flip", expression=expression)
    assert asked == [("flip", 4000), ("none", 4000)]
    assert block["tta"] == "flip" and set(block["temperatures"]) == {"flip", "none"}
    assert block["temperatures"]["flip"] == block["temperature"]
    if classes is None:  # folding Contempt's faces into Neutral changes the truth's temperature
        assert block["temperature"] == pytest.approx(2.0, rel=0.15)
    assert block["temperature"] > 1.5 and block["temperatures"]["none"] > 1.5
    assert block["test_ece"][0] == pytest.approx(expression["ece"])
    correct, confidence = scoring.scored_confidence(test, expression, block["temperature"])
    assert expected_calibration_error(correct, confidence) == pytest.approx(block["test_ece"][1])
    asked.clear()
    one_view = scoring.calibrate(None, val, test, expression=expression)
    assert set(one_view["temperatures"]) == {"none"} and asked == [("none", 4000)]
    assert scoring.calibrate(None, pd.DataFrame(), test) is None  # no validation split
    asked.clear()  # validation predictions the choice of augmentation made are not made again
    kept = {"flip": _predictions(val_proba, val_truth)}
    again = scoring.calibrate(None, val, test, tta="flip", expression=expression, kept=kept)
    assert asked == [("none", 4000)] and set(kept) == {"flip", "none"}
    assert again["temperatures"] == block["temperatures"]


def test_the_temperature_is_read_from_the_metrics_file_and_checked(tmp_path: Path) -> None:
    """The predictor's temperature is the one fitted for its test-time augmentation; a file
    without one for that mode gives none, a malformed one an error naming the file."""
    path = tmp_path / "metrics" / "m.json"
    assert fitted_temperature(path) is None  # not evaluated
    path.parent.mkdir()
    path.write_text(json.dumps({"calibration": None}))
    assert fitted_temperature(path) is None
    path.write_text(json.dumps({"calibration": {"temperatures": {"none": 1.7, "flip": 1.2}}}))
    assert fitted_temperature(path) == 1.7 and fitted_temperature(path, "flip") == 1.2
    assert fitted_temperature(path, "tencrop") is None
    for bad in (-1, 0, "warm", 1e9, True):
        path.write_text(json.dumps({"calibration": {"temperatures": {"none": bad}}}))
        with pytest.raises(DataError, match=r"m\.json: calibration temperature"):
            fitted_temperature(path)
    path.write_text(json.dumps({"calibration": {"temperature": 1.5}}))
    assert fitted_temperature(path) is None  # not known for which test-time augmentation
    path.write_text(json.dumps({"calibration": {"temperatures": [1.5]}}))
    with pytest.raises(DataError, match=r"m\.json: calibration.temperatures must map"):
        fitted_temperature(path)
    with pytest.raises(ConfigError, match="temperature"):
        CalibratedModel(lambda x: x, 0.0)


class Stub:
    """A Backend without TensorFlow: a fixed softmax and a valence."""

    def __init__(self) -> None:
        heads = ["expression", "valence"]
        self.metadata = {"name": "stub", "image_size": 48, "channels": 1, "heads": heads}

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        proba = np.full((len(images), 8), 0.05)
        proba[:, 1] = 0.65
        return {"expression": proba, "valence": np.full((len(images), 1), 0.5)}


def test_a_calibrated_model_scales_the_expression_head_alone() -> None:
    out = CalibratedModel(Stub(), 2.0)(np.zeros((3, 48, 48, 1)))
    np.testing.assert_allclose(
        out["expression"],
        scale_probabilities(Stub()(np.zeros((3, 1)))["expression"], 2.0),
        rtol=1e-6,
    )
    assert out["expression"][0, 1] < 0.65 and (out["valence"] == 0.5).all()
    assert CalibratedModel(Stub(), 2.0).metadata["temperature"] == 2.0


@pytest.fixture(scope="module")
def run_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom CNN saved in a run folder, as notebook 04 leaves it."""
    from helpers.models.factory import build_model

    run = tmp_path_factory.mktemp("run")
    (run / "models").mkdir()
    path = run / "models" / "custom_cnn.keras"
    build_model("custom_cnn", image_size=48, channels=1).save(path)
    return path


def test_the_predictor_applies_the_fitted_temperature_unless_told_not_to(
    run_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model file whose run holds a fitted temperature predicts with it (the same classes,
    other confidences) and says so in one line; --uncalibrated, temperature=1 and a test-time
    augmentation without a fit of its own give the raw softmax; a malformed temperature stops
    the command with the file named."""
    from PIL import Image

    from helpers.inference.cli import main
    from helpers.inference.predict import model_temperature, predict_images

    face = np.random.default_rng(0).integers(0, 255, (48, 48), np.uint8)
    Image.fromarray(face).save(tmp_path / "face.png")
    metrics = run_model.parent.parent / "metrics" / "custom_cnn.json"
    shutil.rmtree(metrics.parent, ignore_errors=True)
    assert model_temperature(run_model)[0] == 1.0
    raw = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False)
    metrics.parent.mkdir()
    metrics.write_text(json.dumps({"calibration": {"temperatures": {"none": 3.0}}}))
    assert model_temperature(run_model) == (
        3.0,
        "fitted on the validation split (metrics/custom_cnn.json)",
    )
    scaled = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False)
    columns = [f"p_{name}" for name in EXPRESSIONS]
    expected = scale_probabilities(raw[columns].to_numpy(np.float64), 3.0)
    np.testing.assert_allclose(scaled[columns].to_numpy(np.float64), expected, atol=1e-5)
    assert (scaled["expression"] == raw["expression"]).all()
    assert scaled["confidence"].iloc[0] == pytest.approx(expected.max(), abs=1e-5)
    again = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False,
                           temperature=1.0)  # fmt: skip
    np.testing.assert_allclose(again[columns], raw[columns], atol=1e-6)
    args = ["--model", str(run_model), str(tmp_path / "face.png"), "--no-detect", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "calibrated")]) == 0
    assert "confidence: temperature 3 (fitted on the validation split" in capsys.readouterr().err
    assert main([*args, "--uncalibrated", "--out", str(tmp_path / "raw")]) == 0
    assert "temperature" not in capsys.readouterr().err
    read = {d: pd.read_csv(tmp_path / d / "predictions.csv") for d in ("calibrated", "raw")}
    assert read["calibrated"]["confidence"][0] == pytest.approx(expected.max(), abs=1e-4)
    assert read["raw"]["confidence"][0] == pytest.approx(raw["confidence"].iloc[0], abs=1e-4)
    flipped = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False,
                             tta="flip")  # fmt: skip
    raw_flip = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False,
                              tta="flip", temperature=1.0)  # fmt: skip
    np.testing.assert_allclose(flipped[columns], raw_flip[columns], atol=1e-6)  # none for flip
    metrics.write_text(json.dumps({"calibration": {"temperatures": {"none": "warm"}}}))
    assert main(args) == 2
    assert "custom_cnn.json: calibration temperature" in capsys.readouterr().err


def test_confining_renormalises_over_the_classes_and_zeroes_the_rest() -> None:
    proba = _softmax(np.random.default_rng(3).normal(0, 2, (50, K)))
    kept = confine(proba, [0, 1, 2, 6])
    np.testing.assert_allclose(kept.sum(axis=1), 1.0)
    assert (kept[:, [3, 4, 5, 7]] == 0).all()
    np.testing.assert_allclose(kept[:, 1] / kept[:, 0], proba[:, 1] / proba[:, 0])
    assert set(kept.argmax(axis=1)) <= {0, 1, 2, 6}
    assert (confine(np.zeros((2, K)), [0, 1]) == 0).all()  # nothing to renormalise


def test_the_classes_notebook_05_scored_are_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    assert scored_classes(path) is None  # not evaluated
    path.write_text(json.dumps({"expression": {"accuracy": 0.5}}))
    assert scored_classes(path) is None  # every class scored
    path.write_text(json.dumps({"expression": {"restricted_to": ["Anger", "Neutral"]}}))
    assert scored_classes(path) == [0, 6]
    path.write_text(json.dumps({"expression": {"restricted_to": list(EXPRESSIONS)}}))
    assert scored_classes(path) is None  # all eight: nothing to confine
    path.write_text(json.dumps({"expression": {"restricted_to": ["Anger", "Joy"]}}))
    with pytest.raises(DataError, match=r"m\.json: expression.restricted_to must list"):
        scored_classes(path)


def test_the_predictor_chooses_among_the_classes_its_model_was_scored_on(
    run_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A model notebook 05 scored on four classes (its data's) predicts among those four, with
    the temperature fitted on them, and says so; --uncalibrated and classes="all" give the
    raw softmax over all eight; a test-time augmentation without a fit says it uses the raw
    softmax; a temperature at the edge of its range says the model was no better than a guess."""
    from PIL import Image

    from helpers.inference.cli import main
    from helpers.inference.predict import model_classes, predict_images

    face = np.random.default_rng(1).integers(0, 255, (48, 48), np.uint8)
    Image.fromarray(face).save(tmp_path / "face.png")
    metrics = run_model.parent.parent / "metrics" / "custom_cnn.json"
    shutil.rmtree(metrics.parent, ignore_errors=True)
    assert model_classes(run_model) == (None, "every class of its expression head")
    raw = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False)
    four = ["Neutral", "Happy", "Sad", "Anger"]
    metrics.parent.mkdir()
    metrics.write_text(
        json.dumps(
            {
                "expression": {"restricted_to": four},
                "calibration": {"n": 6, "temperatures": {"none": 2.0}},
            }
        )
    )
    assert model_classes(run_model)[0] == [0, 1, 2, 6]
    columns = [f"p_{name}" for name in EXPRESSIONS]
    got = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False)
    expected = scale_probabilities(confine(raw[columns].to_numpy(np.float64), [0, 1, 2, 6]), 2.0)
    np.testing.assert_allclose(got[columns].to_numpy(np.float64), expected, atol=1e-5)
    assert got["expression"].iloc[0] in four
    assert (got[[f"p_{n}" for n in EXPRESSIONS if n not in four]] == 0).all().all()
    every = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False,
                           classes="all", temperature=1.0)  # fmt: skip
    np.testing.assert_allclose(every[columns], raw[columns], atol=1e-6)
    with pytest.raises(ConfigError, match="classes must be"):
        predict_images(run_model, [tmp_path / "face.png"], detect=False, classes="some")

    args = ["--model", str(run_model), str(tmp_path / "face.png"), "--no-detect", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "confined")]) == 0
    err = capsys.readouterr().err
    assert "classes: 4 of 8 (Neutral, Happy, Sad, Anger), as notebook 05 scored it" in err
    assert "temperature 2 (fitted on 6 validation faces (metrics/custom_cnn.json))" in err
    assert main([*args, "--uncalibrated", "--out", str(tmp_path / "raw")]) == 0
    assert "classes:" not in capsys.readouterr().err
    read = {d: pd.read_csv(tmp_path / d / "predictions.csv") for d in ("confined", "raw")}
    assert read["confined"]["p_Contempt"][0] == 0 and read["raw"]["p_Contempt"][0] > 0
    assert main([*args, "--tta", "flip"]) == 0
    err = capsys.readouterr().err
    assert "confidence: the raw softmax (none fitted for tta flip in the model's run; " in err
    assert "notebook 05 fitted one for none)" in err
    metrics.write_text(json.dumps({"calibration": {"n": 6, "temperatures": {"none": 20.0}}}))
    assert main(args) == 0
    assert "at the edge of its range [0.05, 20.0]: on those faces the model did no better" in (
        capsys.readouterr().err
    )
    metrics.write_text(json.dumps({"calibration": {"n": 6, "temperatures": {"none": 0.05}}}))
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "at the edge of its range [0.05, 20.0]: the model was right about (nearly) every" in err
    metrics.write_text(
        json.dumps({"expression": {"restricted_to": list(EXPRESSIONS)}, "calibration": None})
    )
    assert main(args) == 0
    assert "classes:" not in capsys.readouterr().err  # every class scored: nothing to say
    metrics.write_text(json.dumps({"expression": {"restricted_to": "Happy"}}))
    assert main(args) == 2
    assert "custom_cnn.json: expression.restricted_to must list" in capsys.readouterr().err


def test_the_report_table_shows_the_temperature_and_the_ece_after_it() -> None:
    from helpers.evaluation.comparison import flatten_metrics

    block = {"temperature": 1.6, "test_ece": [0.09, 0.02]}
    row = flatten_metrics({"model": "m", "n": 10, "calibration": block})
    assert row["calibration_temperature"] == 1.6 and row["calibrated_expression_ece"] == 0.02
    assert "calibration_temperature" not in flatten_metrics({"model": "m", "calibration": None})


def test_the_report_table_says_a_temperature_stopped_at_its_range() -> None:
    from helpers.evaluation.comparison import flatten_metrics
    from helpers.reporting.report_text import row_label

    stopped = {"temperature": 19.9999, "test_ece": [0.11, 0.06], "at_bound": "upper"}
    assert (
        flatten_metrics({"model": "m", "calibration": stopped})["calibration_at_bound"] == "upper"
    )
    inside = {**stopped, "temperature": 1.6, "at_bound": None}
    assert flatten_metrics({"model": "m", "calibration": inside})["calibration_at_bound"] == "no"
    assert "search range" in row_label("calibration_at_bound")


def test_metrics_of_an_earlier_training_are_not_applied_by_the_predictor(
    run_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Metrics stamped with another model file's sha256 (notebook 04 run again since 05) lend
    the predictor neither their temperature, classes nor health note: one line says so and the
    raw softmax over every class is used; with the file's own stamp they are applied."""
    from PIL import Image

    from helpers.core.paths import file_sha256
    from helpers.inference.cli import health_note, main
    from helpers.inference.predict import model_classes, model_temperature, predict_images

    face = np.random.default_rng(2).integers(0, 255, (48, 48), np.uint8)
    Image.fromarray(face).save(tmp_path / "face.png")
    metrics = run_model.parent.parent / "metrics" / "custom_cnn.json"
    shutil.rmtree(metrics.parent, ignore_errors=True)
    raw = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False)
    health = {"collapsed_heads": ["expression"], "expression": {"reasons": ["predicts Sad"]}}
    scores = {
        "expression": {"restricted_to": ["Neutral", "Happy", "Sad", "Anger"]},
        "calibration": {"n": 6, "temperatures": {"none": 2.0}},
        "health": health,
        "trained": {"model_sha256": "0" * 64, "card_finished_at": None},
    }
    metrics.parent.mkdir()
    metrics.write_text(json.dumps(scores))
    temperature, why = model_temperature(run_model)
    assert temperature == 1.0 and "describes an earlier training of custom_cnn" in why
    assert model_classes(run_model)[0] is None
    assert health_note(run_model) is None
    got = predict_images(run_model, [tmp_path / "face.png"], detect=False, progress=False)
    columns = [f"p_{name}" for name in EXPRESSIONS]
    np.testing.assert_allclose(got[columns], raw[columns], atol=1e-6)
    capsys.readouterr()
    assert (
        main(["--model", str(run_model), str(tmp_path / "face.png"), "--no-detect", "--quiet"]) == 0
    )
    err = capsys.readouterr().err.splitlines()
    stale = [line for line in err if "earlier training" in line]
    assert len(stale) == 1 and stale[0].startswith("note: metrics/custom_cnn.json describes")
    assert not [line for line in err if line.startswith(("confidence:", "classes:"))]
    assert not [line for line in err if "learned nothing" in line]
    scores["trained"] = {"model_sha256": file_sha256(run_model), "card_finished_at": None}
    metrics.write_text(json.dumps(scores))
    assert model_temperature(run_model)[0] == 2.0
    assert model_classes(run_model)[0] == [0, 1, 2, 6]
    assert health_note(run_model) is not None
    shutil.rmtree(metrics.parent)
