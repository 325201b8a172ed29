"""helpers.evaluation.health: a collapsed model is told from a weak one, named, explained and not
ranked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.core.progress import PROGRESS_ENV
from helpers.core.run_folder import RunFolder
from helpers.evaluation import health
from helpers.evaluation.comparison import (
    best_models,
    best_per_task_line,
    comparison_table,
    health_note,
    summary_text,
)
from helpers.evaluation.scoring import announce, evaluate, result_line, write_metrics

RNG = np.random.default_rng(0)
TRUTH = RNG.integers(0, 8, size=400)


def _noisy(accuracy: float, seed: int = 1) -> np.ndarray:
    """Predictions right on `accuracy` of the rows, uniformly wrong elsewhere."""
    rng = np.random.default_rng(seed)
    pred = TRUTH.copy()
    wrong = rng.random(len(TRUTH)) > accuracy
    pred[wrong] = (TRUTH[wrong] + rng.integers(1, 8, size=wrong.sum())) % 8
    return pred


def test_one_class_for_everything_is_collapsed_and_named() -> None:
    state = health.expression_health(TRUTH, np.full(len(TRUTH), 1))
    assert state["collapsed"] and state["top_class"] == "Happy"
    assert state["top_share"] == 1.0 and state["classes_predicted"] == 1
    assert any("predicts Happy for 100%" in r for r in state["reasons"])


def test_chance_level_predictions_are_collapsed_though_spread_out() -> None:
    state = health.expression_health(TRUTH, RNG.integers(0, 8, size=len(TRUTH)))
    assert state["top_share"] < 0.3
    assert state["collapsed"] and any("near chance" in r for r in state["reasons"])


@pytest.mark.parametrize("accuracy", [0.5, 0.9])
def test_a_model_that_learned_is_not_collapsed(accuracy: float) -> None:
    state = health.expression_health(TRUTH, _noisy(accuracy))
    assert not state["collapsed"] and state["reasons"] == []
    assert state["f1_macro"] > 2 * state["chance_f1_macro"]


def test_predicting_the_majority_class_as_often_as_it_occurs_is_no_collapse() -> None:
    """85% Neutral predictions on a test set 85% Neutral: perfect, not one class for all."""
    truth = np.repeat([0, 1, 2], [85, 10, 5])
    state = health.expression_health(truth, truth)
    assert not state["collapsed"] and state["reasons"] == []
    assert state["top_share"] == state["top_true_share"] == pytest.approx(0.85)
    assert state["kappa"] == pytest.approx(1.0)


@pytest.mark.parametrize(("classes", "accuracy"), [(2, 0.70), (3, 0.48)])
def test_a_sound_model_on_few_classes_is_not_near_chance(classes: int, accuracy: float) -> None:
    """70% on two balanced classes, 48% on three: well above chance (50%, 33%), whatever a
    macro-F1 bar of 1.5/K (0.75, 0.5) would say."""
    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(classes), 300)
    pred = truth.copy()
    wrong = rng.permutation(len(truth))[: round((1 - accuracy) * len(truth))]
    pred[wrong] = (truth[wrong] + rng.integers(1, classes, size=len(wrong))) % classes
    state = health.expression_health(truth, pred)
    assert np.mean(pred == truth) == pytest.approx(accuracy, abs=0.005)
    assert not state["collapsed"] and state["kappa"] > 0.2


def test_all_happy_on_a_test_set_30_percent_happy_is_collapsed() -> None:
    """Accuracy 0.3 from one answer: the 'majority share' of the truth is no excuse."""
    truth = np.repeat(np.arange(8), [22, 30, 10, 8, 5, 3, 5, 17])  # Happy (1) is 30%
    state = health.expression_health(truth, np.full(len(truth), 1))
    assert state["collapsed"] and state["one_class"] and state["near_chance"]
    assert state["top_true_share"] == pytest.approx(0.30) and state["kappa"] == 0.0
    assert state["reasons"][0] == "predicts Happy for 100% of images, though only 30% are Happy"


def test_mostly_one_class_is_collapsed_even_when_its_few_other_answers_are_right() -> None:
    """Happy for 90% of a test set 30% Happy, the other 10% right: kappa 0.17 is no chance
    level, but the model has all but stopped telling the other classes apart."""
    truth = np.repeat(np.arange(8), [10, 30, 10, 10, 10, 10, 10, 10])
    pred = np.full(100, 1)
    right = [0, 1, 40, 41, 50, 51, 60, 70, 80, 90]  # ten right answers, none of them Happy
    pred[right] = truth[right]
    state = health.expression_health(truth, pred)
    assert state["top_share"] == pytest.approx(0.9) and state["kappa"] > 0.15
    assert state["collapsed"] and state["one_class"] and not state["near_chance"]


def test_a_model_at_chance_on_eight_classes_is_collapsed() -> None:
    """Accuracy about 0.22 and macro-F1 about 0.08 from answers that ignore the face."""
    rng = np.random.default_rng(3)
    truth = rng.choice(8, size=2000, p=[0.22, 0.30, 0.10, 0.08, 0.05, 0.03, 0.05, 0.17])
    pred = rng.choice(8, size=2000, p=[0.60, 0.05, 0.25, 0.02, 0.02, 0.02, 0.02, 0.02])
    state = health.expression_health(truth, pred, labels=range(8))
    assert np.mean(truth == pred) == pytest.approx(0.17, abs=0.03)
    assert state["f1_macro"] == pytest.approx(0.09, abs=0.02)
    assert state["collapsed"] and state["near_chance"] and not state["one_class"]
    assert abs(state["kappa"]) < 0.02 and "near chance (Cohen's kappa" in state["reasons"][0]


def test_one_true_class_predicted_right_is_not_collapsed() -> None:
    """With one class in the truth, kappa is 0/0: chance cannot be told from skill."""
    state = health.expression_health(np.full(20, 3), np.full(20, 3))
    assert not state["collapsed"] and state["kappa"] is None


def test_chance_follows_the_number_of_scored_classes() -> None:
    truth = np.repeat([0, 1], 50)
    assert health.expression_health(truth, truth)["chance_f1_macro"] == 0.5
    assert health.expression_health(truth, truth, labels=range(7))["n_classes"] == 7


def test_missing_truth_is_ignored_and_nothing_left_is_none() -> None:
    assert health.expression_health([-1, -1], [2, 3]) is None
    state = health.expression_health([-1, 0, 1, 1], [5, 0, 1, 1])
    assert state["top_class"] == "Happy" and state["top_share"] == pytest.approx(2 / 3)


def test_constant_regression_output_is_collapsed() -> None:
    truth = RNG.uniform(-1, 1, 300)
    flat = health.regression_health(
        truth, np.full(300, 0.12) + RNG.normal(0, 0.005, 300), "valence"
    )
    assert flat["collapsed"] and "valence predictions barely vary" in flat["reasons"][0]
    good = health.regression_health(truth, truth * 0.6 + RNG.normal(0, 0.2, 300), "valence")
    assert not good["collapsed"]
    assert health.regression_health(np.zeros(5), np.zeros(5), "valence") is None


def test_prediction_health_lists_the_collapsed_heads() -> None:
    table = pd.DataFrame(
        {
            "expression": TRUTH,
            "expression_pred": _noisy(0.8),
            "valence": np.linspace(-1, 1, len(TRUTH)),
            "valence_pred": np.zeros(len(TRUTH)),
        }
    )
    state = health.prediction_health(table)
    assert state["collapsed"] and state["collapsed_heads"] == ["valence"]
    assert not state["expression"]["collapsed"]


def _history(train_accuracy: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "epoch": [0, 1],
            "expression_accuracy": [0.15, train_accuracy],
            "val_expression_accuracy": [0.3, 0.3],
        }
    )


def test_cause_is_read_from_the_history() -> None:
    assert "BatchNorm" in health.likely_cause(_history(0.55))
    assert "still learning slowly" in health.likely_cause(_history(0.26))
    assert "learned nothing" in health.likely_cause(_history(0.16))
    assert health.likely_cause(None).startswith("not told without its training history")


def test_a_single_head_history_is_read_too() -> None:
    """A model whose only head is expression logs `accuracy`, not `expression_accuracy`."""
    single = _history(0.55).rename(columns=lambda c: c.replace("expression_", ""))
    assert list(single.columns) == ["epoch", "accuracy", "val_accuracy"]
    assert "BatchNorm moving statistics" in health.likely_cause(single)
    assert "learned nothing even in training mode" in health.likely_cause(_history(0.16))


def test_the_cause_of_a_model_without_history_is_not_said_twice() -> None:
    dead = health.prediction_health({"expression": TRUTH, "expression_pred": np.full(400, 1)})
    text = health.health_text("vgg16", dead)
    assert "Likely cause: not told without its training history; most often a learning" in text
    assert "usual causes" not in text.lower()


def test_health_text_says_what_and_why() -> None:
    state = health.prediction_health(
        {"expression": TRUTH, "expression_pred": np.full(len(TRUTH), 1)}
    )
    text = health.health_text("vgg16", state, _history(0.14))
    assert "vgg16 collapsed" in text and "Happy for 100%" in text
    assert "learning rate" in text and "Not ranked for expression" in text
    healthy = health.prediction_health({"expression": TRUTH, "expression_pred": TRUTH})
    assert "learned" in health.health_text("custom_cnn", healthy)


def _metrics(model: str, f1: float, pred: np.ndarray) -> dict:
    """A metrics JSON as evaluate() writes it, with the health of these predictions."""
    state = health.prediction_health({"expression": TRUTH, "expression_pred": pred})
    return {
        "model": model,
        "n": len(TRUTH),
        "dataset": None,
        "expression": {"accuracy": f1, "f1_macro": f1, "f1_macro_ci": [f1 - 0.05, f1 + 0.05]},
        "valence": None,
        "arousal": None,
        "landmarks": None,
        "health": state,
    }


def test_the_report_does_not_rank_a_collapsed_model(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_metrics(_metrics("custom_cnn", 0.70, _noisy(0.7)), run / "metrics" / "custom_cnn.json")
    write_metrics(
        _metrics("resnet50", 0.081, RNG.integers(0, 8, len(TRUTH))),
        run / "metrics" / "resnet50.json",
    )
    write_metrics(_metrics("vgg16", 0.058, np.full(len(TRUTH), 1)), run / "metrics" / "vgg16.json")
    (run / "history").mkdir()
    _history(0.6).to_csv(run / "history" / "resnet50.csv", index=False)
    table = comparison_table(run)
    assert table.set_index("model")["collapsed_heads"].to_dict() == {
        "custom_cnn": "",
        "resnet50": "expression",
        "vgg16": "expression",
    }
    assert best_models(table)["expression"]["model"] == "custom_cnn"
    text = summary_text(table)
    assert "next resnet50" not in text and "next vgg16" not in text
    assert "vgg16 collapsed" in text and "Happy for 100%" in text
    # Answers spread over the classes at chance: near chance, not one class for everything.
    assert "resnet50 is near chance" in text and "Cohen's kappa" in text
    assert "BatchNorm moving statistics" in text  # learned in training mode only
    # Every model collapsed: nobody is best.
    only_dead = table[table["model"] != "custom_cnn"]
    assert "expression" not in best_models(only_dead)


def test_evaluate_writes_health_into_the_metrics_json() -> None:
    preds = pd.DataFrame(
        {
            "id": [str(i) for i in range(len(TRUTH))],
            "expression": TRUTH,
            "expression_pred": np.full(len(TRUTH), 4),
        }
    )
    scores = evaluate("m", preds, n_boot=0)
    assert scores["health"]["collapsed"] and scores["health"]["expression"]["top_class"] == "Fear"
    json.dumps(scores, allow_nan=False)
    alive = evaluate("m", preds.assign(expression_pred=_noisy(0.9)), n_boot=0)
    assert not alive["health"]["collapsed"]
    assert "learned" in health_note("", "m", alive["health"])


def _faces(n: int = 200, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (n, 68, 2) in pixels of images of two sizes, and each image's (width, height)."""
    rng = np.random.default_rng(seed)
    shape = rng.uniform(0.2, 0.8, (68, 2))
    sizes = np.where(rng.random((n, 1)) < 0.5, [48.0, 48.0], [224.0, 160.0])
    return (shape + rng.normal(0, 0.03, (n, 68, 2))) * sizes[:, None], sizes


def test_a_landmark_head_at_the_average_shape_learned_nothing() -> None:
    truth, sizes = _faces()
    average = (truth / sizes[:, None]).mean(axis=0) * sizes[:, None]
    dead = health.landmark_health(truth, average, sizes)
    assert dead["collapsed"] and "average shape" in dead["reasons"][0]
    assert dead["nme"] == pytest.approx(dead["baseline_nme"])
    near = truth + np.random.default_rng(5).normal(0, 0.3, truth.shape)
    alive = health.landmark_health(truth, near, sizes)
    assert not alive["collapsed"] and alive["nme"] < 0.5 * alive["baseline_nme"]
    # Without each image's size the two frames mix and the average shape fits neither.
    assert health.landmark_health(truth, average)["baseline_nme"] > dead["baseline_nme"]


def test_a_regression_head_that_does_not_agree_with_the_truth_is_flagged() -> None:
    truth = RNG.uniform(-1, 1, 300)
    unrelated = health.regression_health(truth, RNG.uniform(-1, 1, 300), "arousal")
    assert unrelated["spread_ratio"] > 0.5  # it varies, but not with the truth
    assert unrelated["collapsed"] and "arousal CCC" in unrelated["reasons"][0]


def test_a_head_other_than_expression_is_named_without_a_batchnorm_story(tmp_path: Path) -> None:
    truth, sizes = _faces(len(TRUTH))
    average = (truth / sizes[:, None]).mean(axis=0) * sizes[:, None]
    table = pd.DataFrame(
        {
            "id": [str(i) for i in range(len(TRUTH))],
            "width": sizes[:, 0],
            "height": sizes[:, 1],
            "expression": TRUTH,
            "expression_pred": _noisy(0.9),
            "landmarks": list(truth),
            "landmarks_pred": list(average),
        }
    )
    scores = evaluate("custom_cnn", table, n_boot=0)
    assert scores["health"]["collapsed_heads"] == ["landmarks"]
    assert scores["landmarks"]["baseline_nme"] == pytest.approx(scores["landmarks"]["nme"])
    text = health.health_text("custom_cnn", scores["health"], _history(0.9))
    assert "custom_cnn learned nothing for landmarks" in text and "average shape" in text
    assert "BatchNorm" not in text and "Not ranked for landmarks" in text
    line = result_line(scores)
    assert line.startswith("custom_cnn: accuracy 0.") and "(the average shape 0." in line
    assert line.endswith("; learned nothing for landmarks (not ranked for it)")
    write_metrics(scores, tmp_path / "metrics" / "custom_cnn.json")
    assert "landmarks" not in best_models(comparison_table(tmp_path))
    assert "expression" in best_models(comparison_table(tmp_path))
    assert best_per_task_line(comparison_table(tmp_path)) == (
        "best per task: expression: custom_cnn; landmarks: no model learned it"
    )


def test_each_evaluation_ends_with_its_result_line_in_the_runners_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores = {
        "model": "vgg16",
        "expression": {"accuracy": 0.754, "f1_macro": 0.679, "f1_macro_ci": [0.625, 0.727]},
        "valence": {"ccc": -0.2, "ccc_ci": [-0.3, -0.1]},
        "landmarks": None,
        "tta": "flip",
    }
    announce(scores)  # outside the runner: nothing written anywhere
    lines = tmp_path / "stage.progress"
    monkeypatch.setenv(PROGRESS_ENV, str(lines))
    announce(scores)
    assert lines.read_text() == (
        "vgg16: accuracy 0.754, macro F1 0.679 (95% CI 0.625-0.727), valence CCC -0.200; "
        "test-time augmentation flip\n"
    )
    dead = result_line({**scores, "health": {"collapsed_heads": ["expression", "valence"]}})
    assert dead.endswith("; learned nothing for expression, valence (not ranked for them)")


@pytest.mark.parametrize("epochs", [1, 10])
def test_the_collapse_note_of_a_one_epoch_training_says_it_is_expected(tmp_path, epochs) -> None:
    run = RunFolder(tmp_path)
    run.card_path("custom_cnn").parent.mkdir()
    phases = [{"name": "train", "first_epoch": 0, "end_epoch": epochs}]
    card = {"profile": "smoke" if epochs == 1 else "cpu", "phases": phases, "epochs_run": epochs}
    run.card_path("custom_cnn").write_text(json.dumps(card))
    run.history_path("custom_cnn").parent.mkdir()
    _history(0.12).to_csv(run.history_path("custom_cnn"), index=False)
    dead = health.prediction_health(
        {"expression": TRUTH, "expression_pred": np.full(len(TRUTH), 3)}
    )
    valence = {**dead, "collapsed_heads": ["valence"], "valence": {"reasons": ["flat"]}}
    notes = [health_note(tmp_path, "custom_cnn", state) for state in (dead, valence)]
    for note in notes:  # every collapse note ends the same way
        assert note.endswith(f"Not ranked for {'expression' if note is notes[0] else 'valence'}.")
    if epochs == 1:  # the smoke profile: learning nothing is what one epoch does
        assert "it trained for one epoch, profile smoke (training accuracy at most 0.15" in notes[0]
        assert all(health.EXPECTED_THERE in note for note in notes)
        assert not any("learning rate" in note or "loss weight" in note for note in notes)
    else:
        assert "learning rate is likely too high" in notes[0] and "loss weight" in notes[1]
        assert not any(health.EXPECTED_THERE in note for note in notes)


def test_the_verdict_names_the_images_it_judged() -> None:
    """Notebook 04 judges the validation images, 05 the test images: a model near the line can
    fall either side, so each note says which, and only the test images' verdict ranks."""
    dead = health.prediction_health(
        {"expression": TRUTH, "expression_pred": np.full(len(TRUTH), 1)}, split="validation"
    )
    text = health.health_text("custom_cnn", dead)
    assert text.startswith("**custom_cnn collapsed** (expression) on the validation images: ")
    assert text.endswith(
        "Notebook 05 checks it again on the test images, and rankings follow that check."
    )
    alive = health.prediction_health({"expression": TRUTH, "expression_pred": TRUTH}, split="test")
    assert health.health_text("custom_cnn", alive) == (
        "custom_cnn: learned (no head collapsed on the test images)."
    )
    scores = evaluate("m", pd.DataFrame({"expression": TRUTH, "expression_pred": TRUTH}), n_boot=0)
    assert scores["health"]["split"] == "test"


@pytest.mark.parametrize("ran", [1, 2])
def test_a_time_budget_that_stopped_training_after_one_epoch_is_the_cause(
    tmp_path: Path, ran: int
) -> None:
    """Three epochs planned, the budget stopped it after one: no learning rate is to blame."""
    run = RunFolder(tmp_path)
    run.card_path("custom_cnn").parent.mkdir()
    card = {
        "profile": "fer2013-cpu",
        "phases": [{"name": "train", "first_epoch": 0, "end_epoch": 3}],
        "epochs_run": ran,
        "stopped_by_time_budget": True,
    }
    run.card_path("custom_cnn").write_text(json.dumps(card))
    run.history_path("custom_cnn").parent.mkdir()
    history = pd.DataFrame({"epoch": range(ran), "accuracy": [0.16] * ran})
    history.to_csv(run.history_path("custom_cnn"), index=False)
    dead = health.prediction_health(
        {"expression": TRUTH, "expression_pred": np.full(len(TRUTH), 3)}
    )
    note = health_note(tmp_path, "custom_cnn", dead)
    if ran == 1:
        assert (
            "it trained for one epoch (its time budget stopped it there, of 3 planned), profile "
            "fer2013-cpu (training accuracy at most 0.16" in note
        )
        assert health.EXPECTED_THERE in note and "learning rate" not in note
    else:  # two epochs: the history's story, read from its `accuracy` column
        assert "learned nothing even in training mode (training accuracy at most 0.16" in note


def test_one_true_class_with_varied_predictions_is_not_judged_near_chance() -> None:
    """A one-class truth: metrics' kappa is 0 at any accuracy, so the check does not judge it."""
    from helpers.evaluation.metrics import classification_metrics, cohen_kappa

    truth, pred = [0] * 10, [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]
    state = health.expression_health(truth, pred)
    assert cohen_kappa(truth, pred) == 0.0 == classification_metrics(truth, pred)["kappa"]
    assert np.isnan(cohen_kappa(truth, [0] * 10))  # one class either side: 0/0
    assert state["kappa"] is None and not state["near_chance"] and not state["collapsed"]


def test_health_kappa_is_the_metrics_kappa_on_a_varied_truth() -> None:
    """One Cohen's kappa: the collapse check reads the one metrics.json reports."""
    from helpers.evaluation.metrics import classification_metrics, cohen_kappa

    rng = np.random.default_rng(5)
    truth, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    kappa = health.expression_health(truth, pred)["kappa"]
    assert kappa == cohen_kappa(truth, pred) == classification_metrics(truth, pred)["kappa"]


def test_an_external_test_set_is_named_and_not_said_to_be_unranked() -> None:
    """metrics/<model>.<name>.json judges the model on <name>; rankings use the run's test split."""
    table = pd.DataFrame({"expression": TRUTH, "expression_pred": np.full(len(TRUTH), 1)})
    own = evaluate("vgg16", table, n_boot=0)["health"]
    other = evaluate("vgg16", table, n_boot=0, dataset="rafdb")["health"]
    assert own["split"] == "test" and other["split"] == "rafdb"
    assert "Not ranked for expression" in health.health_text("vgg16", own)
    text = health.health_text("vgg16", other)
    assert "on the rafdb images" in text and "Not ranked" not in text
    assert "Rankings follow the run's own test images" in text
