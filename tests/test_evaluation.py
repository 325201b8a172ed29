"""helpers.evaluation (predictions, scoring, comparison, leaderboard) and helpers.reporting.html:
predictions from a hand-built model, metrics files, comparisons, report."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.core.errors import DataError
from helpers.core.jsonio import read_json
from helpers.core.labels import EXPRESSIONS
from helpers.core.landmarks import from_model_output
from helpers.core.progress import PROGRESS_ENV
from helpers.core.records import make_records
from helpers.evaluation.comparison import (
    best_models,
    chosen_model,
    comparison_table,
    flatten_metrics,
    summary_text,
)
from helpers.evaluation.leaderboard import append_leaderboard, merge_runs
from helpers.evaluation.leaderboard import main as leaderboard_main
from helpers.evaluation.metrics import expected_calibration_error
from helpers.evaluation.predictions import (
    confident_mistakes,
    load_predictions,
    predict_table,
    restrict_table,
    save_predictions,
    shared_classes,
)
from helpers.evaluation.scoring import (
    check_recorded,
    compare_recorded,
    dataset_name,
    evaluate,
    headline_table,
    record_results,
    result_line,
    scored_confidence,
    validation_health,
    write_metrics,
)
from helpers.reporting import html as report_html

SIZE = 16
# Stored image sizes (height, width, channels): not square, not the model size, one grey.
SHAPES = [(30, 40, 3), (32, 32, 1), (64, 50, 3), (16, 16, 3), (20, 24, 3)]


def _points(height: int, width: int, seed: int) -> np.ndarray:
    """68 points inside the image with the outer eye corners apart (a usable NME normaliser)."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0.2, 0.8, size=(68, 2)) * [width - 1, height - 1]
    pts[36] = (0.25 * (width - 1), 0.4 * (height - 1))
    pts[45] = (0.75 * (width - 1), 0.4 * (height - 1))
    return pts.astype(np.float32)


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Five PNGs of different sizes; valence on some rows, arousal on none, landmarks on most."""
    folder = tmp_path_factory.mktemp("eval_images")
    rng = np.random.default_rng(0)
    rows = []
    for i, (h, w, c) in enumerate(SHAPES):
        shape = (h, w) if c == 1 else (h, w, c)
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path)
        rows.append(
            {
                "id": f"r{i}",
                "image": str(path),
                "source": "test",
                "expression": i % 4,
                "valence": 0.2 * i - 0.4 if i != 2 else math.nan,
                "landmarks": _points(h, w, i) if i != 4 else None,
            }
        )
    return make_records(rows)


def _target(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """What the model is trained to output for these landmarks (pipeline's targets)."""
    from helpers.core.landmarks import to_model_space

    return (to_model_space(points, height, width, SIZE) / SIZE).reshape(-1)


def _tiny_model(
    heads=("expression", "valence", "arousal", "landmarks"),
    n_classes: int = 8,
    favourite: int = 3,
    landmark_target: np.ndarray | None = None,
):
    """A model shaped like the factory's (preprocess layer, nested backbone, dict of named
    heads) whose outputs ignore the image: zero kernels, biases chosen by the test."""
    import keras
    from keras import layers

    from helpers.models.backbones import BACKBONE_LAYER, Preprocess

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = Preprocess("custom_cnn", name="preprocess")(inputs)
    inner = keras.Input((SIZE, SIZE, 3))
    x = keras.Model(inner, layers.Conv2D(2, 3, padding="same")(inner), name=BACKBONE_LAYER)(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    logits = np.zeros(n_classes, np.float32)
    logits[favourite] = 2.0
    target = landmark_target if landmark_target is not None else np.full(136, 0.5, np.float32)
    target = np.clip(target, 1e-4, 1 - 1e-4)
    spec = {
        "expression": (n_classes, "softmax", logits),
        "valence": (1, "tanh", np.array([np.arctanh(0.5)], np.float32)),
        "arousal": (1, "tanh", np.array([np.arctanh(-0.25)], np.float32)),
        "landmarks": (136, "sigmoid", np.log(target / (1 - target)).astype(np.float32)),
    }
    outputs = {}
    for head in heads:
        units, activation, bias = spec[head]
        outputs[head] = layers.Dense(
            units,
            activation=activation,
            name=head,
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(bias),
        )(x)
    return keras.Model(inputs, outputs, name="tiny")


@pytest.fixture(scope="module")
def predictions(table: pd.DataFrame) -> pd.DataFrame:
    """Predictions of a model trained (by construction) to hit image 0's landmarks exactly."""
    h, w, _ = SHAPES[0]
    model = _tiny_model(landmark_target=_target(table["landmarks"][0], h, w))
    return predict_table(model, table, batch_size=2, progress=False)


# --------------------------------------------------------------------------- predict_table


def test_predict_table_layout(predictions: pd.DataFrame, table: pd.DataFrame) -> None:
    assert list(predictions["id"]) == list(table["id"])
    assert list(predictions["image"]) == list(table["image"])
    assert list(predictions["width"]) == [w for _, w, _ in SHAPES]
    assert list(predictions["height"]) == [h for h, _, _ in SHAPES]
    assert list(predictions["expression"]) == list(table["expression"])
    assert (predictions["expression_pred"] == 3).all()
    proba = predictions[[f"p_{c}" for c in EXPRESSIONS]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(predictions["confidence"], proba.max(axis=1))
    np.testing.assert_allclose(predictions["valence_pred"], 0.5, atol=1e-5)
    np.testing.assert_allclose(predictions["arousal_pred"], -0.25, atol=1e-5)
    assert predictions["arousal"].isna().all()
    assert predictions["landmarks"][4] is None
    assert all(p.shape == (68, 2) for p in predictions["landmarks_pred"])
    inference = predictions.attrs["inference"]
    assert inference["images"] == len(table) and inference["model_seconds"] > 0


def test_landmark_predictions_come_back_in_stored_pixels(
    predictions: pd.DataFrame, table: pd.DataFrame
) -> None:
    """The model hits image 0's training target, so its prediction is image 0's truth."""
    np.testing.assert_allclose(predictions["landmarks_pred"][0], table["landmarks"][0], atol=0.02)
    # The other images get the same normalised output, so the same fractions of their size.
    for i, (h, w, _) in enumerate(SHAPES):
        frac = (predictions["landmarks_pred"][i] + 0.5) / [w, h]
        np.testing.assert_allclose(
            frac, (predictions["landmarks_pred"][0] + 0.5) / [40, 30], atol=1e-4
        )


@pytest.mark.parametrize("height,width", [(30, 40), (224, 224), (16, 16), (100, 7)])
def test_landmarks_from_model_output_inverts_training_targets(height: int, width: int) -> None:
    pts = _points(height, width, 1)
    back = from_model_output(_target(pts, height, width)[None], [width], [height], SIZE)
    np.testing.assert_allclose(back[0], pts, atol=1e-3)


def test_predict_table_without_some_heads_and_seven_classes(table: pd.DataFrame) -> None:
    model = _tiny_model(heads=("expression",), n_classes=7, favourite=6)
    preds = predict_table(model, table, batch_size=64, progress=False)
    assert [c for c in preds.columns if c.startswith("p_")] == [f"p_{c}" for c in EXPRESSIONS[:7]]
    assert (preds["expression_pred"] == 6).all()
    assert not {"valence_pred", "arousal_pred", "landmarks_pred"} & set(preds.columns)
    d = evaluate("tiny", preds, n_boot=20)
    assert d["valence"] is None and d["arousal"] is None and d["landmarks"] is None
    assert d["expression"]["labels"] == list(EXPRESSIONS[:4])


def _clocked(monkeypatch: pytest.MonkeyPatch, slow_call: int) -> list[int]:
    """A clock that moves only in the one call that runs a Keras model (KerasModel's), 10 ms per
    row computed, and a hundred times that in call number `slow_call` (the machine busy
    elsewhere); the rows of each call."""
    import time

    from helpers.inference.runtime import KerasModel

    now, rows = [0.0], []
    original = KerasModel.__call__

    def call(self, x):
        now[0] += 0.01 * len(x) * (100 if len(rows) == slow_call else 1)
        rows.append(len(x))
        return original(self, x)

    monkeypatch.setattr(KerasModel, "__call__", call)
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    return rows


@pytest.mark.parametrize("tta, views", [("none", 1), ("flip", 2)])
def test_inference_speed_counts_every_row_computed_and_is_the_median_of_repeated_passes(
    table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch, tta: str, views: int
) -> None:
    """5 faces in batches of 2: the last batch is padded to 2 rows, which the model computes
    too; one slow call (the 8th) spoils one timed pass, and the median of the passes ignores it."""
    from helpers.evaluation.scoring import evaluate_model

    model = _tiny_model(heads=("expression",))
    rows = _clocked(monkeypatch, slow_call=7 * views)
    scores, _ = evaluate_model(model, "m", table, batch_size=2, tta=tta, n_boot=0)
    assert set(rows) == {2}  # every call a full batch
    assert scores["inference"]["images_per_s"] == pytest.approx(100.0 / views)
    if tta != "none":  # the one-view speed models are compared on, measured the same way
        assert scores["without_tta"]["inference"]["images_per_s"] == pytest.approx(100.0)
    assert scores["inference"]["passes"] >= 3 and "median" in scores["inference"]["measure"]


def test_the_deployment_latency_is_the_same_measure_as_the_metrics_speed(
    table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's fastest model and its deployment table time the same work the same way:
    both hand helpers.inference.speed the one call that runs a Keras model (the predictor's),
    on the same full batches, as many passes, and get the same figure."""
    from helpers.core.preprocess import model_inputs
    from helpers.inference import speed
    from helpers.inference.deploy import _run_backend
    from helpers.inference.runtime import open_model

    timed, original = [], speed.throughput

    def recorded(call, batches, **kwargs):
        result = original(call, batches, **kwargs)
        timed.append(([b.shape for b in batches], result["passes"], result["images_per_s"]))
        return result

    monkeypatch.setattr(speed, "throughput", recorded)
    rows = _clocked(monkeypatch, slow_call=-1)  # time passes only inside the shared call
    model = _tiny_model(heads=("expression",))
    measured = predict_table(model, table, batch_size=2, progress=False, timed=True)
    metrics_speed = measured.attrs["inference"]["images_per_s"]
    assert len(timed) == 1 and rows
    x = model_inputs(table["image"].tolist(), SIZE, 3)
    _, latency = _run_backend(open_model(model, "keras"), x, batch_size=2, n_single=2)
    assert len(timed) == 2 and timed[1][:2] == timed[0][:2]  # same batches, same passes
    assert metrics_speed == pytest.approx(100.0)  # finite: the model ran inside the shared call
    assert latency["images_per_s"] == pytest.approx(metrics_speed)
    assert latency["batched_ms"] == pytest.approx(10.0)
    assert latency["single_ms"] == pytest.approx(10.0)


def test_the_readme_documents_every_column_of_the_predictions_file(
    predictions: pd.DataFrame,
) -> None:
    """What a run produces names each column predict_table writes, and that the probabilities
    are the uncalibrated softmax of the evaluated test-time augmentation."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("<run>/predictions/<model>.parquet")
    entry = readme[start : readme.index("\n<run>/", start + 1)]
    for column in predictions.columns:
        name = "p_<Class>" if column.startswith("p_") else column
        name = "<head>_pred" if name.endswith("_pred") and name != "expression_pred" else name
        assert name in entry, column
    assert "uncalibrated" in entry and "`tta`" in entry


def test_save_and_load_predictions_round_trip(predictions: pd.DataFrame, tmp_path: Path) -> None:
    path = save_predictions(predictions, tmp_path / "p" / "tiny.parquet")
    back = load_predictions(path)
    assert list(back.columns) == list(predictions.columns)
    assert back.attrs == json.loads(json.dumps(predictions.attrs))
    for column in ("landmarks", "landmarks_pred"):
        for a, b in zip(predictions[column], back[column], strict=False):
            assert (a is None and b is None) or np.array_equal(a, b)
    rest = [c for c in predictions.columns if c not in ("landmarks", "landmarks_pred")]
    pd.testing.assert_frame_equal(back[rest], predictions[rest], check_dtype=False)


def test_load_predictions_names_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_predictions(tmp_path / "missing.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match=r"bad.parquet.*parquet"):
        load_predictions(bad)


# --------------------------------------------------------------------------- evaluate


def test_evaluate_follows_the_metrics_contract(predictions: pd.DataFrame, tmp_path: Path) -> None:
    d = evaluate("tiny", predictions, n_boot=50, seed=0, dataset=None)
    assert {"model", "n", "expression", "valence", "arousal", "landmarks", "notes"} <= set(d)
    assert d["model"] == "tiny" and d["n"] == len(predictions)
    expr = d["expression"]
    for key in (
        "accuracy",
        "f1_macro",
        "f1_weighted",
        "precision_macro",
        "recall_macro",
        "kappa",
        "krippendorff_alpha",
        "roc_auc_ovr",
        "pr_auc_macro",
        "confusion_matrix",
        "labels",
        "f1_macro_ci",
        "accuracy_ci",
    ):
        assert key in expr, key
    assert np.array(expr["confusion_matrix"]).shape == (4, 4)
    assert d["valence"]["n"] == 4 and "ccc" in d["valence"] and "ccc_ci" in d["valence"]
    assert d["arousal"] is None  # no arousal truth: null, never a made-up number
    assert d["landmarks"]["n"] == 4 and "nme_ci" in d["landmarks"]
    assert d["inference"]["images"] == len(predictions)
    path = write_metrics(d, tmp_path / "metrics" / "tiny.json")
    assert json.loads(path.read_text()) == d
    assert evaluate("tiny", predictions, n_boot=50, seed=0) == d  # deterministic


def _fake_predictions(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """8-class probabilities where Contempt often wins, on a 7-class (FER-like) truth."""
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(8), n)
    proba[: n // 2, 7] += 2.0
    proba /= proba.sum(axis=1, keepdims=True)
    truth = rng.integers(0, 7, n)
    df = pd.DataFrame(
        {
            "id": [f"x{i}" for i in range(n)],
            "expression": truth,
            "expression_pred": proba.argmax(axis=1),
            "confidence": proba.max(axis=1),
        }
    )
    for k, name in enumerate(EXPRESSIONS):
        df[f"p_{name}"] = proba[:, k]
    return df


def test_cross_dataset_seven_classes_restricts_and_notes() -> None:
    preds = _fake_predictions()
    assert (preds["expression_pred"] == 7).sum() >= 30
    d = evaluate("m", preds, n_boot=20, classes=range(7), dataset="fer")
    expr = d["expression"]
    assert expr["labels"] == list(EXPRESSIONS[:7])
    assert np.array(expr["confusion_matrix"]).shape == (7, 7)
    assert np.array(expr["confusion_matrix"]).sum() == len(preds)  # no row dropped
    assert expr["n_pred_outside_labels"] == 0  # Contempt is never predicted after restriction
    assert expr["restricted_to"] == list(EXPRESSIONS[:7])
    assert any("Contempt" in note and "argmax" in note for note in d["notes"])
    assert d["dataset"] == "fer"
    # Unrestricted, the model's Contempt answers count as errors.
    plain = evaluate("m", preds, n_boot=0)
    assert plain["expression"]["accuracy"] < expr["accuracy"]


def test_shared_classes_both_ways() -> None:
    classes, notes = shared_classes(EXPRESSIONS, [0, 1, 2, 3, 4, 5, 6, 6, np.nan])
    assert classes == list(range(7))
    assert len(notes) == 1 and "Contempt" in notes[0]
    classes, notes = shared_classes(EXPRESSIONS[:7], ["happy", "Contempt", "neutral"])
    assert classes == [0, 1]
    assert any("does not predict Contempt" in n for n in notes)
    assert shared_classes(EXPRESSIONS, range(8)) == (list(range(8)), [])
    classes, notes = shared_classes(["Happy"], ["Sad"])
    assert classes == [] and "share no expression class" in notes[0]


def test_model_lacking_a_test_class_is_noted_not_crashing() -> None:
    preds = _fake_predictions().drop(columns=["p_Contempt"])
    preds["expression"] = np.arange(len(preds)) % 8  # the truth has Contempt
    preds["expression_pred"] = preds[[f"p_{c}" for c in EXPRESSIONS[:7]]].to_numpy().argmax(1)
    d = evaluate("seven", preds, n_boot=0, classes=range(8))
    assert "Contempt" not in d["expression"]["labels"]
    assert d["expression"]["n_dropped"] == (preds["expression"] == 7).sum()
    assert any("does not predict Contempt" in n for n in d["notes"])
    none = evaluate("x", preds, n_boot=0, classes=["Contempt"])
    assert none["expression"] is None and "share no expression class" in none["notes"][0]


def test_dataset_name() -> None:
    assert dataset_name("data/fer2013.zip") == "fer2013"
    assert dataset_name("/x/FER-2013/") == "fer-2013"
    assert dataset_name("My Set.v2.tar.gz") == "my_set_v2"
    assert dataset_name("fer2013.csv") == "fer2013"
    assert dataset_name("") == "external" and dataset_name("...") == "external"
    assert "." not in dataset_name("a.b.c.zip")


def test_confident_mistakes_sorted_and_wrong_only() -> None:
    preds = _fake_predictions()
    wrong = confident_mistakes(preds, n=5)
    assert len(wrong) == 5
    assert (wrong["expression"] != wrong["expression_pred"]).all()
    assert wrong["confidence"].is_monotonic_decreasing
    top = preds[preds["expression"] != preds["expression_pred"]]["confidence"].max()
    assert wrong["confidence"].iloc[0] == top
    assert confident_mistakes(preds.drop(columns=["confidence"])).empty


# --------------------------------------------------------------------------- comparison


def _metrics_json(model: str, f1: float, nme: float, ccc: float | None) -> dict:
    return {
        "model": model,
        "n": 100,
        "expression": {
            "accuracy": f1 + 0.1,
            "f1_macro": f1,
            "f1_macro_ci": [f1 - 0.05, f1 + 0.05],
            "kappa": f1 - 0.1,
            "confusion_matrix": [[1, 0], [0, 1]],
            "labels": ["Neutral", "Happy"],
        },
        "valence": None
        if ccc is None
        else {"ccc": ccc, "ccc_ci": [ccc - 0.1, ccc + 0.1], "rmse": 0.3},
        "arousal": None,
        "landmarks": {"nme": nme, "nme_ci": [nme - 0.01, nme + 0.01]},
        "inference": {"images_per_s": 100.0 if model == "a" else 250.0},
    }


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    write_metrics(_metrics_json("a", 0.60, 0.08, 0.40), run / "metrics" / "a.json")
    write_metrics(_metrics_json("b", 0.52, 0.05, None), run / "metrics" / "b.json")
    write_metrics(
        _metrics_json("a", 0.30, 0.20, None) | {"dataset": "fer"}, run / "metrics" / "a.fer.json"
    )
    (run / "models").mkdir()
    (run / "models" / "a.json").write_text(
        json.dumps(
            {
                "model": "a",
                "parameters": {"epochs": 3},
                "training_time_s": 12.5,
                "images_per_s": 80.0,
                "params": 1234,
                "epochs_run": 3,
            }
        )
    )
    return run


def test_comparison_table(run_dir: Path) -> None:
    table = comparison_table(run_dir)
    assert list(table["model"]) == ["a", "b"]
    row = table.set_index("model")
    assert row.loc["a", "expression_f1_macro"] == 0.60
    assert row.loc["a", "expression_f1_macro_ci_low"] == pytest.approx(0.55)
    assert row.loc["a", "params"] == 1234 and row.loc["a", "train_seconds"] == 12.5
    assert row.loc["a", "train_images_per_s"] == 80.0 and row.loc["a", "epochs"] == 3
    assert math.isnan(row.loc["b", "params"])  # no model card: tolerated
    assert math.isnan(row.loc["b", "valence_ccc"])
    assert row.loc["b", "inference_images_per_s"] == 250.0
    cross = comparison_table(run_dir, dataset="fer")
    assert list(cross["model"]) == ["a"] and cross["expression_f1_macro"][0] == 0.30
    assert comparison_table(run_dir / "nothing").empty


def test_by_model_shows_counts_whole_and_scores_rounded(run_dir: Path) -> None:
    """The report's per-model table: a column per model, rows in the order asked, counts as
    integers and scores to three decimals whatever else shares the column."""
    from helpers.evaluation.comparison import by_model

    table = comparison_table(run_dir).assign(
        tta="none", expression_accuracy=0.84412, expression_f1_macro=[0.85, 0.8814]
    )
    shown = by_model(
        table,
        ["model", "n", "expression_accuracy", "expression_f1_macro", "params", "tta", "absent"],
    )
    assert list(shown.columns) == ["a", "b"]
    assert list(shown.index) == ["n", "expression_accuracy", "expression_f1_macro", "params", "tta"]
    assert shown.loc["expression_f1_macro"].tolist() == ["0.850", "0.881"]  # as precise alike
    assert shown.loc["params", "a"] == "1,234"  # thousands separated, as in results.csv
    assert shown.loc["n", "a"].isdigit()
    mixed = by_model(table.assign(float_mb=[5.113, 96.24]), ["float_mb"], digits=4)
    assert mixed.loc["float_mb"].tolist() == ["5.1", "96.2"]  # one precision in a row
    assert shown.loc["expression_accuracy", "a"] == "0.844" and shown.loc["tta", "b"] == "none"
    assert by_model(table.assign(train_seconds=253.64), ["train_seconds"]).iloc[0, 0] == "253.6"
    heads = by_model(table.assign(collapsed_heads="expression,landmarks"), ["collapsed_heads"])
    assert heads.iloc[0, 0] == "expression, landmarks"  # wraps in a narrow column
    assert shown.loc["params", "b"] is None  # no model card
    assert "1234.0" not in shown.to_string() and "0.84412" not in shown.to_string()


def test_speed_is_compared_on_one_view_and_negative_intervals_read_as_ranges(
    run_dir: Path,
) -> None:
    """A model evaluated with ten-crop calls itself ten times per face: its speed without it
    is the one compared. A CCC interval below zero reads "-0.300 to 0.134", not "-0.300-0.134"."""
    slow = _metrics_json("a", 0.60, 0.08, -0.10) | {
        "tta": "tencrop",
        "inference": {"images_per_s": 60.0},
        "without_tta": {"expression": {"f1_macro": 0.58}, "inference": {"images_per_s": 600.0}},
    }
    slow["valence"]["ccc_ci"] = [-0.3, 0.134]
    write_metrics(slow, run_dir / "metrics" / "a.json")
    table = comparison_table(run_dir)
    assert table.set_index("model").loc["a", "one_view_images_per_s"] == 600.0
    text = summary_text(table)
    assert "without test-time augmentation): a (600 images/s: the median of 3 timed" in text
    assert "(95% CI -0.300 to 0.134)" in text


def test_comparison_table_names_a_corrupt_file(run_dir: Path) -> None:
    (run_dir / "metrics" / "c.json").write_text("{not json")
    with pytest.raises(DataError, match=r"c\.json"):
        comparison_table(run_dir)


def test_best_models_and_summary(run_dir: Path) -> None:
    table = comparison_table(run_dir)
    best = best_models(table)
    assert best["expression"]["model"] == "a" and best["expression"]["metric"] == "f1_macro"
    assert best["landmarks"]["model"] == "b" and best["landmarks"]["lower_is_better"]
    assert best["valence"]["model"] == "a"
    assert "arousal" not in best  # nobody scored it
    text = summary_text(table)
    assert "Expression: a is best" in text and "Landmarks: b is best" in text
    assert "CIs overlap" in text or "beyond both CIs" in text
    assert "Fastest at inference (one view per image, without test-time augmentation): b" in text
    assert summary_text(table.iloc[0:0]) == "No model metrics found."
    assert text.startswith("2 models compared")
    # One model (the FER profiles train one) is described, not ranked against itself
    alone = summary_text(table.iloc[:1])
    assert alone.startswith("1 model evaluated") and "Expression: a, macro F1" in alone
    assert "is best" not in alone and "Fastest" not in alone and "Smallest" not in alone
    assert alone.splitlines()[-1].startswith("a: ") and "1,234 parameters" in alone


def test_leaderboard_appends_rows_under_one_header(run_dir: Path, tmp_path: Path) -> None:
    table = comparison_table(run_dir)
    board = tmp_path / "reports" / "leaderboard.csv"
    other = tmp_path / "other_run"
    append_leaderboard(run_dir, table, "smoke", "abc123", path=board)
    append_leaderboard(other, table, "cpu", "abc123", path=board)
    lines = board.read_text().splitlines()
    assert sum(line.startswith("timestamp,") for line in lines) == 1
    df = pd.read_csv(board)
    assert len(df) == 2 * len(table)
    assert list(df["profile"]) == ["smoke", "smoke", "cpu", "cpu"]
    assert list(df["model"]) == ["a", "b", "a", "b"]
    assert df["expression_f1_macro"].tolist() == [0.6, 0.52, 0.6, 0.52]
    assert not list(board.parent.glob("*.tmp"))


def test_leaderboard_rows_name_their_tta_and_compare_speed_on_one_view(
    run_dir: Path, tmp_path: Path
) -> None:
    """A row scored with ten-crop says so, keeps its one-view scores beside, and its speed is
    the one-view speed the report compares; counts are whole numbers."""
    ten_crop = _metrics_json("a", 0.60, 0.08, 0.40) | {
        "tta": "tencrop",
        "inference": {"images_per_s": 60.0},
        "without_tta": {"expression": {"f1_macro": 0.58}, "inference": {"images_per_s": 600.0}},
    }
    write_metrics(ten_crop, run_dir / "metrics" / "a.json")
    board = tmp_path / "leaderboard.csv"
    append_leaderboard(run_dir, comparison_table(run_dir), "cpu", "abc123", path=board)
    rows = pd.read_csv(board, dtype=str, keep_default_na=False).set_index("model")
    assert rows.loc["a", "tta"] == "tencrop" and rows.loc["b", "tta"] == "none"
    assert float(rows.loc["a", "one_view_images_per_s"]) == 600.0
    assert float(rows.loc["b", "one_view_images_per_s"]) == 250.0
    assert float(rows.loc["a", "no_tta_expression_f1_macro"]) == 0.58
    assert float(rows.loc["b", "no_tta_expression_f1_macro"]) == 0.52  # its score is one view
    assert "inference_images_per_s" not in rows.columns  # the ten-crop speed is not compared
    assert rows.loc["a", "n"] == "100" and rows.loc["a", "params"] == "1234"
    assert rows.loc["b", "params"] == ""


def test_merging_leaves_a_model_that_learned_nothing_out_of_the_ranking(
    tmp_path: Path, capsys
) -> None:
    """A collapsed expression head's macro-F1 ranks nothing, however high it happens to be."""
    dead = _one_model_run(tmp_path / "m1" / "run", "resnet50", 0.9)
    metrics = read_json(dead / "metrics" / "resnet50.json")
    metrics["health"] = {
        "collapsed": True,
        "collapsed_heads": ["expression", "landmarks"],
        "expression": {"reasons": ["one class for 95% of the faces"]},
        "landmarks": {"reasons": ["no better than the average shape"]},
    }
    write_metrics(metrics, dead / "metrics" / "resnet50.json")
    alive = _one_model_run(tmp_path / "m2" / "run", "vgg16", 0.51)
    board = tmp_path / "leaderboard.csv"
    assert leaderboard_main([str(dead), str(alive), "--board", str(board)]) == 0
    out, err = capsys.readouterr()
    assert out.index("vgg16") < out.index("resnet50")
    dead_line = next(line for line in out.splitlines() if "resnet50" in line)
    assert "0.9" not in dead_line and "100.0" not in out and " 100 " in dead_line
    assert "resnet50 of" in err and "learned nothing for expression, landmarks" in err


def test_a_model_without_a_collapsed_heads_entry_is_ranked_and_named_for_nothing() -> None:
    """Rows merged from a table without collapsed_heads hold NaN there: those models learned
    something, and no line says one "learned nothing for nan"."""
    from helpers.evaluation.leaderboard import _unranked_lines

    flagged = pd.DataFrame({"model": ["a"], "run": ["r1"], "collapsed_heads": ["valence"]})
    older = pd.DataFrame({"model": ["b", "c"], "run": ["r2", "r2"]})
    merged = pd.concat([flagged, older], ignore_index=True)
    assert merged["collapsed_heads"].isna().sum() == 2
    assert _unranked_lines(merged) == [
        "a of r1 learned nothing for valence: not ranked for it (its scores there blank)"
    ]


def test_notebook_06_run_again_replaces_the_runs_rows(run_dir: Path, tmp_path: Path) -> None:
    table = comparison_table(run_dir)
    board = tmp_path / "leaderboard.csv"
    append_leaderboard(tmp_path / "earlier", table.iloc[:1], "smoke", "abc123", path=board)
    append_leaderboard(run_dir, table, "smoke", "abc123", path=board)
    again = table.assign(expression_f1_macro=[0.7, 0.5])
    append_leaderboard(run_dir, again, "smoke", "abc123", path=board)
    df = pd.read_csv(board)
    assert list(df["run"]) == [str(tmp_path / "earlier"), str(run_dir), str(run_dir)]
    assert df["expression_f1_macro"].tolist() == [0.6, 0.7, 0.5]


def _one_model_run(folder: Path, model: str, f1: float, seed: int = 0) -> Path:
    """A run folder as `./run_all.sh --models <model>` leaves it on one machine."""
    write_metrics(_metrics_json(model, f1, 0.05, None), folder / "metrics" / f"{model}.json")
    (folder / "manifest.json").write_text(
        json.dumps({"profile": {"name": "gpu"}, "seed": seed, "data": {"sha256": "d1"}})
    )
    return folder


def test_merging_two_runs_that_each_trained_one_model(tmp_path: Path, capsys) -> None:
    """Two machines, one model each: one leaderboard ranks both, and a second merge of the
    same folders adds nothing."""
    first = _one_model_run(tmp_path / "machine1" / "run", "resnet50", 0.48)
    second = _one_model_run(tmp_path / "machine2" / "run", "vgg16", 0.51)
    board = tmp_path / "leaderboard.csv"
    assert leaderboard_main([str(first), str(second), "--board", str(board)]) == 0
    printed = capsys.readouterr().out
    assert printed.index("vgg16") < printed.index("resnet50")  # best macro F1 first
    rows = pd.read_csv(board)
    assert list(rows["model"]) == ["resnet50", "vgg16"]
    assert list(rows["run"]) == [str(first.resolve()), str(second.resolve())]
    assert set(rows["profile"]) == {"gpu"} and set(rows["data_hash"]) == {"d1"}
    merged = merge_runs([first, second], path=board)
    assert list(merged["model"]) == ["vgg16", "resnet50"] and merged.attrs["notes"] == []
    assert len(pd.read_csv(board)) == 2


def test_merging_runs_of_different_seeds_warns_and_an_empty_run_is_an_error(
    tmp_path: Path, capsys
) -> None:
    first = _one_model_run(tmp_path / "a", "resnet50", 0.48, seed=0)
    second = _one_model_run(tmp_path / "b", "vgg16", 0.51, seed=1)
    board = tmp_path / "board.csv"
    assert "different seeds" in merge_runs([first, second], path=board).attrs["notes"][0]
    (tmp_path / "empty").mkdir()
    assert leaderboard_main([str(tmp_path / "empty"), "--board", str(board)]) == 1
    assert "no metrics" in capsys.readouterr().err


def test_merging_checks_every_folder_before_writing_the_board(tmp_path: Path, capsys) -> None:
    first = _one_model_run(tmp_path / "a", "resnet50", 0.48)
    (tmp_path / "unscored").mkdir()
    board = tmp_path / "board.csv"
    assert leaderboard_main([str(first), str(tmp_path / "unscored"), "--board", str(board)]) == 1
    assert "unscored: no metrics/<model>.json" in capsys.readouterr().err
    assert not board.exists()  # nothing written: the run that was fine is not half-merged


def test_the_folder_of_a_seeds_or_folds_series_stands_for_its_runs(tmp_path: Path) -> None:
    series = tmp_path / "seeds01"
    members = [
        _one_model_run(series / f"seed-{seed}", "vgg16", 0.5 + seed / 10, seed=seed)
        for seed in (0, 1)
    ]
    (series / "seeds.md").write_text("summary")
    board = tmp_path / "board.csv"
    merged = merge_runs([members[0], series], path=board)
    assert sorted(merged["run"]) == [str(m.resolve()) for m in members]
    assert list(pd.read_csv(board)["run"]) == [str(m.resolve()) for m in members]


def test_a_run_made_by_hand_goes_on_the_board_with_notebook_01s_record(tmp_path: Path) -> None:
    run = _one_model_run(tmp_path / "by_hand", "custom_cnn", 0.3)
    (run / "manifest.json").unlink()
    (run / "settings.json").write_text(
        json.dumps({"profile": "smoke", "data": {"path": "/d.zip", "sha256": "98fe", "demo": True}})
    )
    merged = merge_runs([run], path=tmp_path / "board.csv")
    assert list(merged["data_hash"]) == ["98fe"] and list(merged["profile"]) == ["smoke"]


def test_notebook_07_says_when_no_model_learned_expression(tmp_path: Path, capsys) -> None:
    run = _one_model_run(tmp_path / "run", "custom_cnn", 0.3)
    assert chosen_model(run) == "custom_cnn" and capsys.readouterr().out == ""
    metrics = json.loads((run / "metrics" / "custom_cnn.json").read_text())
    metrics["health"] = {
        "collapsed": True,
        "collapsed_heads": ["expression"],
        "expression": {"collapsed": True, "reasons": ["predicts Happy for 95% of images"]},
    }
    write_metrics(metrics, run / "metrics" / "custom_cnn.json")
    assert chosen_model(run) == "custom_cnn"
    assert capsys.readouterr().out == (
        "no model in this run learned expression (notebook 05's health check): using "
        "custom_cnn, the best of those that did not; expect near-chance predictions\n"
    )
    (run / "models").mkdir(exist_ok=True)
    (run / "models" / "vgg16.keras").write_bytes(b"trained")  # use_model: one the run has
    assert chosen_model(run, "vgg16") == "vgg16" and capsys.readouterr().out == ""


# --------------------------------------------------------------------------- report


def _png_b64() -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), 200, np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _notebook(path: Path, markdown: str = "# Results") -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    nb = new_notebook(
        cells=[
            new_markdown_cell(markdown),
            new_code_cell(
                "SECRET_CODE_LINE = 42\nfig",
                execution_count=1,
                outputs=[
                    new_output(
                        "display_data", data={"image/png": _png_b64(), "text/plain": "<Figure>"}
                    ),
                    new_output("stream", name="stdout", text="accuracy 0.5\n"),
                ],
            ),
        ]
    )
    nbformat.write(nb, path)
    return path


def test_export_report_hides_code_and_embeds_images(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "local.png")
    nb = _notebook(tmp_path / "06_report.ipynb", "# Results\n\n![diagram](local.png)")
    out = report_html.export_report(nb, tmp_path / "out" / "report.html", title="Affect report")
    html = out.read_text(encoding="utf-8")
    assert "SECRET_CODE_LINE" not in html
    assert "accuracy 0.5" in html
    assert html.count("data:image/png;base64,") >= 2  # the figure and the markdown image
    assert "<title>Affect report</title>" in html
    assert report_html._external_images(html) == []
    assert 'src="local.png"' not in html


def test_export_report_refuses_remote_images(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "nb.ipynb", "![x](http://example.com/x.png)")
    with pytest.raises(DataError, match="outside the file"):
        report_html.export_report(nb, tmp_path / "r.html")
    with pytest.raises(DataError, match="not found"):
        report_html.export_report(tmp_path / "missing.ipynb", tmp_path / "r.html")


def test_predict_table_on_no_rows(table: pd.DataFrame) -> None:
    preds = predict_table(_tiny_model(), table.iloc[0:0], progress=False)
    assert preds.empty and "p_Contempt" in preds.columns and "landmarks_pred" in preds.columns
    assert evaluate("tiny", preds, n_boot=10)["expression"] is None


def test_restrict_table_matches_the_restricted_metrics() -> None:
    preds = _fake_predictions()
    seven = restrict_table(preds, range(7))
    assert (seven["expression_pred"] != 7).all() and (seven["p_Contempt"] == 0).all()
    np.testing.assert_allclose(seven[[f"p_{c}" for c in EXPRESSIONS]].sum(axis=1), 1.0)
    d = evaluate("m", preds, n_boot=0, classes=range(7))
    accuracy = (seven["expression_pred"] == seven["expression"]).mean()
    assert d["expression"]["accuracy"] == pytest.approx(accuracy)
    assert (preds["expression_pred"] == 7).any()  # the input is left as it was


def test_the_reliability_diagram_scores_the_rows_and_confidences_of_the_metrics_ece() -> None:
    preds = _fake_predictions(200)
    d = evaluate("m", preds, n_boot=0, classes=range(7))
    correct, confidence = scored_confidence(preds, d["expression"])
    assert correct.size == 200
    assert expected_calibration_error(correct, confidence) == pytest.approx(d["expression"]["ece"])
    # The stored confidence is the 8-class one: it would give another ECE.
    hit = (preds["expression_pred"] == preds["expression"]).to_numpy()
    unrestricted = expected_calibration_error(hit, preds["confidence"])
    assert abs(unrestricted - d["expression"]["ece"]) > 0.05
    # Truth the model cannot predict (Contempt) is left out, as in the metrics.
    seven = _fake_predictions(200).drop(columns=["p_Contempt"])
    seven["expression"] = np.arange(len(seven)) % 8
    seven["confidence"] = seven[[f"p_{c}" for c in EXPRESSIONS[:7]]].max(axis=1)
    d = evaluate("seven", seven, n_boot=0, classes=range(8))
    correct, confidence = scored_confidence(seven, d["expression"])
    assert correct.size == d["expression"]["n"] == 175
    assert expected_calibration_error(correct, confidence) == pytest.approx(d["expression"]["ece"])
    assert scored_confidence(preds, None)[0].size == 0  # no expression head: nothing to plot


def test_ece_is_a_headline_row_and_a_table_column_but_not_in_the_result_line() -> None:
    d = evaluate("m", _fake_predictions(), n_boot=0, classes=range(7))
    ece = d["expression"]["ece"]
    assert 0 < ece < 1
    assert headline_table(d).set_index("metric").loc["ECE", "value"] == f"{ece:.3f}"
    assert flatten_metrics(d)["expression_ece"] == pytest.approx(ece)
    line = result_line(d)
    assert line.startswith("m: accuracy ") and "ECE" not in line and f"{ece:.3f}" not in line


def test_recorded_results_are_reproduced_within_tolerance_or_refused(
    run_dir: Path, tmp_path: Path
) -> None:
    recorded = record_results(run_dir, tmp_path / "recorded.json", tolerance=0.05)
    assert set(recorded["models"]) == {"a", "b"}
    assert recorded["models"]["a"]["expression_f1_macro"] == 0.60
    same = read_json(run_dir / "metrics" / "a.json")
    line = check_recorded(same, tmp_path / "recorded.json")
    assert line.startswith("matches the recorded results within tolerance: ")
    assert "0.60" not in line  # names metrics, never values: one line for every model
    moved = {**same, "expression": {**same["expression"], "f1_macro": 0.50}}
    assert "expression_f1_macro 0.500 (recorded 0.600 ± 0.05)" in compare_recorded(
        moved, tmp_path / "recorded.json"
    )
    with pytest.raises(DataError, match=r"recorded\.json: differs from the recorded results"):
        check_recorded(moved, tmp_path / "recorded.json")
    assert check_recorded(same, "").startswith("no recorded results to compare with")
    assert "no recorded results for c" in compare_recorded(
        {**same, "model": "c"}, tmp_path / "recorded.json"
    )


def test_a_metrics_file_is_read_back_checked(tmp_path: Path) -> None:
    from helpers.evaluation.comparison import MetricsFile

    good = tmp_path / "vgg16.json"
    good.write_text(
        json.dumps(
            {
                "model": "vgg16",
                "n": 3,
                "expression": {
                    "confusion_matrix": [[1, 0], [0, 2]],
                    "labels": ["Neutral", "Happy"],
                },
                "valence": None,
            }
        )
    )
    record = MetricsFile.read(good)
    assert (record.model, record.n, record.dataset) == ("vgg16", 3, None)
    assert record.heads["valence"] is None and record.heads["landmarks"] is None
    assert record.confusion() == ([[1, 0], [0, 2]], ["Neutral", "Happy"])
    # A class predicted that the test set lacks: the matrix names its own classes.
    wider = {
        "confusion_matrix": [[1, 0, 1], [0, 2, 0], [0, 0, 0]],
        "labels": ["Neutral", "Happy"],
        "confusion_labels": ["Neutral", "Happy", "Fear"],
    }
    (tmp_path / "cnn.json").write_text(json.dumps({"model": "cnn", "n": 4, "expression": wider}))
    assert MetricsFile.read(tmp_path / "cnn.json").confusion() == (
        wider["confusion_matrix"],
        ["Neutral", "Happy", "Fear"],
    )
    (tmp_path / "a.ck.json").write_text("{}")  # no model: named by its file
    assert MetricsFile.read(tmp_path / "a.ck.json").model == "a"
    for field, value, problem in (
        ("n", "3", "must be a count of images"),
        ("expression", [0.5], "must be an object or null"),
        ("model", 7, "must name the model"),
    ):
        bad = tmp_path / f"bad_{field}.json"
        bad.write_text(json.dumps({"model": "m", field: value}))
        with pytest.raises(DataError, match=f"metrics file: {field} {problem}"):
            MetricsFile.read(bad)


def test_an_external_test_set_is_scored_on_its_test_split() -> None:
    """fer2013.csv holds FER-2013's training faces and both test halves: as a test set, only its
    test split counts (a model trained on FER-2013 would be scored on what it learned)."""
    from helpers.evaluation.scoring import external_test_records

    records = make_records(
        [
            {"id": str(i), "image": f"{i}.png", "source": "t", "expression": i % 7, "split": s}
            for i, s in enumerate(["train"] * 5 + ["val"] * 2 + ["test"] * 3)
        ]
    )
    part, note = external_test_records(records)
    assert part["id"].tolist() == ["7", "8", "9"]
    assert note == (
        "scored on the source's test split: 3 of its 10 records "
        "(its train and validation splits left out)"
    )
    unsplit = records.assign(split=None)
    assert (
        external_test_records(unsplit)[0].equals(unsplit)
        and external_test_records(unsplit)[1] is None
    )
    only_test = records.assign(split="test")
    assert (
        len(external_test_records(only_test)[0]) == 10
        and external_test_records(only_test)[1] is None
    )


def test_a_head_that_learned_nothing_on_validation_is_named_in_the_runners_terminal(
    table: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = tmp_path / "stage.progress"
    monkeypatch.setenv(PROGRESS_ENV, str(lines))
    state = validation_health(_tiny_model(heads=("expression",)), table)
    assert state["collapsed_heads"] == ["expression"]  # class 3 for every image
    assert lines.read_text().startswith(
        "tiny learned nothing for expression on the validation split"
    )
    assert "notebook 05 checks it again on the test split" in lines.read_text()
    assert "will not be ranked" not in lines.read_text()  # the test split's check decides


def test_the_classes_scored_are_read_as_the_predictor_reads_them() -> None:
    """`restricted_to` parsed once: sorted AffectNet indices, and names that are not
    expressions an error naming where they came from, for scoring and the predictor alike."""
    from helpers.evaluation.scoring import restricted_classes
    from helpers.inference.calibration import class_indices

    assert restricted_classes({"restricted_to": ["Neutral", "Anger"]}) == [0, 6]
    assert restricted_classes({"restricted_to": None}) is None and restricted_classes(None) is None
    assert class_indices(["Anger", "Neutral"], "m.json") == [0, 6]
    every = list(EXPRESSIONS)  # scoring confines to all eight (renormalised), as evaluate did
    assert restricted_classes({"restricted_to": every}) == list(range(len(EXPRESSIONS)))
    for names in (["Anger", "Joy"], "Anger", [{"name": "Anger"}]):
        with pytest.raises(DataError, match=r"m\.json: expression.restricted_to must list"):
            restricted_classes({"restricted_to": names}, "m.json")
    with pytest.raises(DataError, match=r"the metrics JSON: expression.restricted_to"):
        restricted_classes({"restricted_to": ["Joy"]})


def test_each_long_step_of_the_evaluation_says_what_it_does_and_how_big():
    from helpers.evaluation.corruptions import corruption_line
    from helpers.evaluation.heatmaps import explain_line
    from helpers.evaluation.scoring import calibration_line, scoring_line, tta_choice_line

    assert tta_choice_line(3579) == (
        "comparing test-time augmentation: scoring 3,579 validation faces in 3 modes "
        "(none, flip, tencrop) ..."
    )
    assert scoring_line(3574, "none", 1000) == (
        "scoring 3,574 test faces (one view, 1,000 bootstrap resamples) ..."
    )
    assert scoring_line(500, "flip", 0, "RAF-DB") == (
        "scoring 500 RAF-DB faces (test-time augmentation flip, then one view) ..."
    )
    assert calibration_line(3579, ["flip", "none"]) == (
        "calibrating: predicting 3,579 validation faces (flip, none) ..."
    )
    assert explain_line(3574) == "Grad-CAM: explaining 3,574 test faces ..."
    assert corruption_line(2000, 22) == (
        "corruptions: scoring 2,000 test faces in 22 passes (clean, then corrupted) ..."
    )


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"n_boot": "200"}, "n_boot must be an integer >= 0 (got '200')"),
        ({"batch_size": "64"}, "batch_size must be an integer >= 1 (got '64')"),
        ({"tta": "flipp"}, "tta must be one of none, flip, tencrop, auto, got 'flipp'"),
        ({"seed": -1}, "seed must be an integer >= 0 (got -1)"),
        ({"corruption_n": 2.5}, "corruption_n must be an integer >= 0 (got 2.5)"),
        ({"compare_tta": "yes"}, "compare_tta must be True or False (got 'yes')"),
        (
            {"model": "custom_cn"},
            "model: unknown model 'custom_cn'; valid names: custom_cnn, vgg16, resnet50, "
            "mobilenetv2, efficientnetb0, vggnet; did you mean custom_cnn?",
        ),
        ({"test_data": ["../data/no_such.zip"]}, "no_such.zip: not found in "),
        ({"recorded": "no_such.json"}, "(the parameter recorded)"),
    ],
)
def test_notebook_05_checks_its_parameters_before_any_work(given, said, tmp_path):
    """As a person edits the parameters cell: a wrong value stops the settings cell with one
    line naming the parameter, before the model is even looked for."""
    from builders import run_cells
    from helpers.core.errors import ConfigError

    run = tmp_path / "run"
    run.mkdir()
    (run / "settings.json").write_text(json.dumps({"profile": "smoke"}))
    with pytest.raises((ConfigError, DataError)) as caught:
        run_cells("05_evaluate", [2], run_dir=str(run), **given)
    assert said in str(caught.value)
    with pytest.raises(DataError, match="model file not found"):  # the parameters as committed
        run_cells("05_evaluate", [2], run_dir=str(run))


def test_run_all_checks_notebook_05s_set_values_as_the_notebook_does():
    from helpers.core.errors import ConfigError
    from helpers.run import values

    for given, says in (
        ({"n_boot": "200"}, "n_boot must be an integer >= 0"),
        ({"tta": "flipp"}, "tta must be one of"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ):
        with pytest.raises(ConfigError, match=says):
            values.check_values("smoke", "05_evaluate", "custom_cnn", given)
    with pytest.raises(DataError, match="not found"):
        values.check_values("smoke", "05_evaluate", "custom_cnn", {"test_data": "none.zip"})
    values.check_values("smoke", "05_evaluate", "custom_cnn", {"test_data": "05_evaluate.ipynb"})


def test_a_constant_head_has_its_null_statistics_explained_in_the_notes() -> None:
    preds = _fake_predictions()
    jitter = np.random.default_rng(2).normal(0, 1e-9, size=(len(preds), 8))
    for k, name in enumerate(EXPRESSIONS):
        preds[f"p_{name}"] = 1 / 8 + jitter[:, k]
    preds["valence"] = np.linspace(-1, 1, len(preds))
    preds["valence_pred"] = 0.25 + jitter[:, 0]
    d = evaluate("flat", preds, n_boot=10)
    assert d["expression"]["roc_auc_ovr"] is None and d["valence"]["sagr"] is None
    said = " ".join(d["notes"])
    assert "ROC-AUC and PR-AUC are null" in said and "valence" in said and "SAGR" in said
    assert not any("ROC-AUC" in n for n in evaluate("m", _fake_predictions(), n_boot=10)["notes"])
