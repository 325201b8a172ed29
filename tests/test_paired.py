"""helpers.evaluation.paired and bootstrap.paired_difference: whether a best model's lead over
another is real, from both models' predictions on the same test images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.core.labels import EXPRESSIONS
from helpers.evaluation import paired
from helpers.evaluation.bootstrap import paired_difference
from helpers.evaluation.comparison import comparison_table, summary_text
from helpers.evaluation.predictions import save_predictions
from helpers.evaluation.scoring import evaluate, scored_pairs, write_metrics

N = 400
CLASSES = 8


def _truth(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Expression labels over all 8 classes and valence in [-1, 1], the same for every model."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, CLASSES, N), rng.uniform(-1, 1, N)


def _landmarks(error: float, seed: int) -> tuple[pd.Series, pd.Series]:
    """(68, 2) truth per face, eye corners 20 px apart, and a prediction `error` px off."""
    rng = np.random.default_rng(seed)
    truth = np.random.default_rng(0).uniform(10, 40, (N, 68, 2))
    truth[:, 36], truth[:, 45] = (15, 20), (35, 20)
    guess = truth + rng.normal(0, error, truth.shape)
    return pd.Series(list(truth), dtype=object), pd.Series(list(guess), dtype=object)


def _predictions(
    expression_pred: np.ndarray,
    valence_pred: np.ndarray,
    landmark_error: float,
    order: np.ndarray | None = None,
) -> pd.DataFrame:
    """A predictions table as notebook 05 saves it, rows optionally in another order."""
    truth, valence = _truth()
    landmarks, landmarks_pred = _landmarks(landmark_error, seed=int(landmark_error * 10))
    proba = np.full((N, CLASSES), 0.02)
    proba[np.arange(N), expression_pred] = 1 - 0.02 * (CLASSES - 1)
    table = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(N)],
            "expression": truth,
            "expression_pred": expression_pred,
            "confidence": proba.max(axis=1),
            **{f"p_{name}": proba[:, c] for c, name in enumerate(EXPRESSIONS)},
            "valence": valence,
            "valence_pred": valence_pred,
            "width": 50,
            "height": 50,
            "landmarks": landmarks,
            "landmarks_pred": landmarks_pred,
        }
    )
    return table if order is None else table.iloc[order].reset_index(drop=True)


def _wrong(truth: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Predictions right everywhere but on `rows`, where each is the next class."""
    pred = truth.copy()
    pred[rows] = (truth[rows] + 1) % CLASSES
    return pred


def _models() -> dict[str, pd.DataFrame]:
    """best: wrong on 20% of the faces; close: wrong on those and 6% more (a small lead that
    the same faces make certain); other: wrong on a different 22% (a lead within noise)."""
    truth, valence = _truth()
    rng = np.random.default_rng(1)
    rows = rng.permutation(N)
    best_wrong, extra = rows[: N // 5], rows[N // 5 : N // 5 + 24]
    other_wrong = rng.permutation(N)[: N // 5 + 8]
    noise = rng.normal(0, 0.3, N)
    return {
        "best": _predictions(_wrong(truth, best_wrong), valence + noise, 1.0),
        "close": _predictions(
            _wrong(truth, np.concatenate([best_wrong, extra])),
            valence + noise * 1.05,
            1.1,
            order=rng.permutation(N),  # saved in another order: rows are matched by id
        ),
        "other": _predictions(_wrong(truth, other_wrong), valence + rng.normal(0, 0.3, N), 1.5),
    }


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A run folder with three models' predictions and metrics JSONs, as notebook 05 writes."""
    for name, predictions in _models().items():
        save_predictions(predictions, tmp_path / "predictions" / f"{name}.parquet")
        write_metrics(evaluate(name, predictions), tmp_path / "metrics" / f"{name}.json")
    return tmp_path


def test_a_small_lead_on_the_same_faces_is_certain_though_the_intervals_overlap(
    run_dir: Path,
) -> None:
    """`close` errs on every face `best` errs on and 24 more: the two models' own intervals
    overlap, but the paired interval of the difference excludes 0; `other`, as accurate with
    different mistakes, is not told apart from `best`."""
    table = comparison_table(run_dir)
    by = table.set_index("model")
    assert (
        by.loc["close", "expression_f1_macro_ci_high"]
        > by.loc["best", "expression_f1_macro_ci_low"]
    )
    result = paired.paired_table(run_dir, table).set_index(["task", "other"])
    close, other = result.loc[("expression", "close")], result.loc[("expression", "other")]
    lead = by.loc["best", "expression_f1_macro"] - by.loc["close", "expression_f1_macro"]
    assert close["lead"] == pytest.approx(lead)  # the metrics JSONs' own difference
    assert close["lead_ci_low"] > 0 and close["p_value"] < 0.01
    assert close["verdict"] == paired.AHEAD and close["n"] == N
    assert other["lead_ci_low"] < 0 < other["lead_ci_high"] and other["p_value"] > 0.05
    assert other["verdict"] == paired.LEVEL
    assert set(result.index.get_level_values("task")) == {"expression", "valence", "landmarks"}
    assert (result["best"] == "best").all()


def test_the_summary_says_whether_the_lead_is_real(run_dir: Path) -> None:
    """With the paired table the summary gives the lead's paired interval and verdict; without
    it, only that the two intervals overlap."""
    table = comparison_table(run_dir)
    alone = summary_text(table)
    with_pairs = summary_text(table, paired.paired_table(run_dir, table))
    expression = next(line for line in with_pairs.splitlines() if line.startswith("Expression"))
    assert "next other" in expression or "next close" in expression
    assert "paired 95% CI" in expression and f"same {N} test images" in expression
    assert "paired" not in alone and ("CIs overlap" in alone or "beyond both" in alone)
    # The runner-up `close` named beside a paired lead when `other` is out of the way
    without_other = table[table["model"] != "other"].reset_index(drop=True)
    text = summary_text(without_other, paired.paired_table(run_dir, without_other))
    assert "next close" in text and ": ahead" in text


def test_lower_is_better_leads_are_positive_and_collapsed_models_left_out(run_dir: Path) -> None:
    """A lead is how much better the best is, also for NME (lower is better); a model that
    collapsed for a task is not compared for it."""
    table = comparison_table(run_dir)
    result = paired.paired_table(run_dir, table).set_index(["task", "other"])
    by = table.set_index("model")
    assert by["landmarks_nme"].idxmin() == "best"
    lead = result.loc[("landmarks", "other")]
    assert lead["lead"] == pytest.approx(
        by.loc["other", "landmarks_nme"] - by.loc["best", "landmarks_nme"]
    )
    assert 0 < lead["lead_ci_low"] < lead["lead"] < lead["lead_ci_high"]
    flagged = table.assign(collapsed_heads=np.where(table["model"] == "other", "expression", ""))
    result = paired.paired_table(run_dir, flagged)
    assert not ((result["task"] == "expression") & (result["other"] == "other")).any()
    assert ((result["task"] == "valence") & (result["other"] == "other")).any()


def test_pairs_that_cannot_be_compared_say_why(run_dir: Path) -> None:
    (run_dir / "predictions" / "other.parquet").unlink()
    result = paired.paired_table(run_dir).set_index(["task", "other"])
    assert result.loc[("expression", "other"), "verdict"].startswith("not compared: no predictions")
    assert np.isnan(result.loc[("expression", "other"), "lead"])
    shown = paired.shown(result.reset_index())
    assert list(shown.columns) == [
        "task",
        "metric",
        "best",
        "other",
        "lead (95% CI)",
        "p",
        "verdict",
    ]
    assert shown["lead (95% CI)"].str.match(r"^$|^0\.\d{3} \(").all()
    assert (shown["p"] == "<0.002").any()  # no resample on the far side of zero


def test_paired_difference_refuses_mismatched_inputs() -> None:
    truth, _ = _truth()
    with pytest.raises(ValueError, match="different truths"):
        paired_difference("expression", "f1_macro", (truth, truth), (truth[::-1], truth),
                          label_ids=list(range(CLASSES)))  # fmt: skip
    with pytest.raises(ValueError, match="differ in shape"):
        paired_difference("valence", "ccc", (truth, truth), (truth[:10], truth[:10]))
    with pytest.raises(Exception, match="label_ids"):
        paired_difference("expression", "f1_macro", (truth, truth), (truth, truth))


def test_paired_difference_is_seeded_and_zero_for_one_model() -> None:
    truth, valence = _truth()
    pred = _wrong(truth, np.arange(0, N, 3))
    a = paired_difference(
        "expression", "accuracy", (truth, pred), (truth, pred), label_ids=[*range(8)]
    )
    assert a["difference"] == 0 and a["ci"] == [0.0, 0.0] and a["p_value"] == 1.0
    noisy = (valence, valence + np.random.default_rng(3).normal(0, 0.5, N))
    first = paired_difference("valence", "ccc", (valence, valence * 0.9), noisy, seed=5)
    assert first == paired_difference("valence", "ccc", (valence, valence * 0.9), noisy, seed=5)
    assert first["difference"] > 0 and first["ci"][0] > 0


def test_scored_pairs_follow_the_metrics_json(run_dir: Path) -> None:
    """The labels a paired comparison resamples are those the model's metrics were scored on."""
    predictions = _models()["best"]
    pairs = scored_pairs(predictions)
    assert set(pairs) == {"expression", "valence", "landmarks"}
    truth, pred = pairs["expression"]
    scored = evaluate("best", predictions, n_boot=0)
    assert (truth == pred).mean() == pytest.approx(scored["expression"]["accuracy"])


def test_the_leads_plot_draws_a_panel_per_task_and_colours_the_verdict(run_dir: Path) -> None:
    """One panel per task, a point and bar per other model at its lead; a lead whose interval
    clears 0 is drawn apart from one that does not; nothing to compare says so."""
    from figure_checks import check_figure
    from helpers.reporting import plots

    result = paired.paired_table(run_dir)
    fig = check_figure(plots.plot_paired_leads(result), 3)
    expression = next(ax for ax in fig.axes if ax.get_title().startswith("Expression: best"))
    drawn = {
        tuple(line.get_ydata()): line.get_color()
        for line in expression.lines
        if line.get_marker() == "o"
    }
    assert len(drawn) == 2  # over close (ahead) and over other (not told apart)
    assert [t.get_text() for t in expression.get_yticklabels()] == ["over close", "over other"]
    colours = {line.get_color() for line in expression.lines if line.get_marker() == "o"}
    assert len(colours) == 2
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["ahead (CI excludes 0)", "not told apart (CI includes 0)"]
    empty = check_figure(plots.plot_paired_leads(result.iloc[0:0]), 1)
    assert not empty.axes[0].axison


def test_the_terminal_line_names_whom_each_best_model_leads(run_dir: Path) -> None:
    line = paired.verdict_line(paired.paired_table(run_dir))
    assert line.startswith("leads on the same test images: expression: best ahead of close")
    assert (
        "not told apart from other" in line and "landmarks: best ahead of every other model" in line
    )
    (run_dir / "predictions" / "other.parquet").unlink()
    assert "not compared with other" in paired.verdict_line(paired.paired_table(run_dir))
    assert paired.verdict_line(paired.paired_table(run_dir).iloc[0:0]) == ""


def test_a_seven_class_test_split_is_paired_as_its_metrics_were_scored(tmp_path: Path) -> None:
    """On 7-class data an 8-class model's predictions are confined to the 7 (Contempt's
    probability left out), in the metrics JSON and so in the paired lead, which is their
    difference; unconfined, `a`'s Contempt guesses would count as mistakes."""
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 7, N)
    tables = {}
    for name, wrong in (("a", 40), ("b", 80)):
        proba = np.full((N, CLASSES), 0.01)
        proba[np.arange(N), truth] = 0.5
        proba[rng.permutation(N)[:wrong], 7] = 0.9  # Contempt on top: the runner-up is the truth
        rows = rng.permutation(N)[: wrong // 2]
        proba[rows, (truth[rows] + 1) % 7] = 0.6  # real mistakes, inside the seven
        table = pd.DataFrame(
            {
                "id": [f"r{i}" for i in range(N)],
                "expression": truth,
                "expression_pred": proba.argmax(1),
                "confidence": proba.max(1),
            }
        )
        for c, label in enumerate(EXPRESSIONS):
            table[f"p_{label}"] = proba[:, c]
        tables[name] = table
        save_predictions(table, tmp_path / "predictions" / f"{name}.parquet")
        scores = evaluate(name, table, classes=list(range(7)))
        assert scores["expression"]["restricted_to"]
        write_metrics(scores, tmp_path / "metrics" / f"{name}.json")
    by = comparison_table(tmp_path).set_index("model")["expression_f1_macro"]
    row = paired.paired_table(tmp_path).set_index(["task", "other"]).loc[("expression", "b")]
    assert row["lead"] == pytest.approx(by["a"] - by["b"])
    plain = scored_pairs(tables["a"])["expression"]
    assert (plain[1] == 7).any()  # without the metrics' confinement Contempt would be predicted


def test_where_the_splits_name_each_persons_faces_the_pairs_draw_people(run_dir: Path) -> None:
    """A run on faces of 50 people (the splits' `subject`) where `close` errs, beyond `best`'s
    mistakes, on the 24 faces of three people: the same leads, and the lead's interval drawn
    by people is the wider one; without a person for any face, images are drawn as before."""
    from helpers.core.records import make_records, save_records
    from helpers.core.run_folder import RunFolder

    plain = paired.paired_table(run_dir, n_boot=500).set_index(["task", "other"])
    truth, _ = _truth()
    extra = np.random.default_rng(1).permutation(N)[N // 5 : N // 5 + 24]  # as _models draws
    rest = np.setdiff1d(np.arange(N), extra)
    person = np.empty(N, dtype=object)
    person[extra] = [f"e{k // 8}" for k in range(24)]
    person[rest] = [f"p{k // 8}" for k in range(len(rest))]
    records = {
        "id": [f"r{i}" for i in range(N)],
        "image": [f"faces/r{i}.png" for i in range(N)],
        "source": "ck",
        "expression": truth,
        "split": "test",
    }
    splits = RunFolder(run_dir).splits
    bounds = ["lead_ci_low", "lead_ci_high"]
    save_records(make_records({**records, "subject": person}), splits)
    table = paired.paired_table(run_dir, n_boot=500).set_index(["task", "other"])
    assert table["lead"].equals(plain["lead"])
    row = ("expression", "close")
    assert np.diff(table.loc[row, bounds])[0] > 1.5 * np.diff(plain.loc[row, bounds])[0]
    save_records(make_records({**records, "subject": None}), splits)
    assert paired.paired_table(run_dir, n_boot=500).set_index(["task", "other"]).equals(plain)


def test_a_folder_that_is_no_run_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    """A mistyped run folder, or one that holds no run, says so rather than reading as a run in
    which no model leads anything."""
    from helpers.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"paired_table: run folder .*nope does not exist"):
        paired.paired_table(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is not a run folder"):
        paired.paired_table(tmp_path / "empty")
