"""helpers.evaluation.metrics, .bootstrap and scoring.evaluate_predictions: every metric pinned
against a hand computation or the reference library."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import (
    average_precision_score,
    cohen_kappa_score,
    f1_score,
    precision_recall_fscore_support,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from sklearn.preprocessing import label_binarize

from helpers.core.errors import ConfigError
from helpers.core.groups import group_codes
from helpers.core.jsonio import json_ready
from helpers.core.labels import EXPRESSIONS
from helpers.evaluation.bootstrap import (
    _confusions,
    _f1_macro,
    _kappa,
    bootstrap_ci,
    paired_difference,
    with_confidence_intervals,
)
from helpers.evaluation.metrics import (
    ccc,
    classification_metrics,
    expected_calibration_error,
    krippendorff_alpha,
    landmark_nme,
    map_label_space,
    per_class_report,
    regression_metrics,
    reliability_bins,
    restrict_predictions,
)
from helpers.evaluation.scoring import evaluate_predictions


def _classifier(n: int, n_classes: int, seed: int = 0, skill: float = 1.0):
    """Truth, probabilities (8 columns) and argmax predictions of a decent fake classifier."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, n_classes, n)
    proba = rng.dirichlet(np.ones(8), n)
    proba[np.arange(n), t] += skill * rng.uniform(0, 1, n)
    proba /= proba.sum(axis=1, keepdims=True)
    return t, proba, proba.argmax(axis=1)


def _face(rng: np.random.Generator) -> np.ndarray:
    """68 points with the outer eye corners 50 px apart."""
    pts = rng.uniform(50, 150, (68, 2))
    pts[36], pts[45] = (80.0, 100.0), (130.0, 100.0)
    return pts


# --------------------------------------------------------------------------- agreement


def test_krippendorff_alpha_matches_hand_computation():
    # Coincidences o00=2, o01=o10=1, o11=4; n0=3, n1=5, n=8:
    # alpha = 1 - (n - 1) * (o01 + o10) / (2 n0 n1) = 1 - 7 * 2 / 30 = 8/15.
    t, p = [0, 0, 1, 1], [0, 1, 1, 1]
    assert krippendorff_alpha(t, p) == pytest.approx(8 / 15)
    m = classification_metrics(t, p)
    assert m["krippendorff_alpha"] == pytest.approx(8 / 15)
    # Cohen: p_o = 3/4, p_e = 1/2 * 1/4 + 1/2 * 3/4 = 1/2 -> kappa = 1/2.
    assert m["kappa"] == pytest.approx(0.5)


def test_alpha_is_clearly_nonzero_on_a_real_classifier_and_one_when_perfect():
    t, _, p = _classifier(500, 8)
    m = classification_metrics(t, p)
    assert m["krippendorff_alpha"] > 0.3
    assert m["krippendorff_alpha"] == pytest.approx(m["kappa"], abs=0.01)  # large-n agreement
    perfect = classification_metrics(t, t)
    assert perfect["krippendorff_alpha"] == pytest.approx(1.0)
    assert perfect["kappa"] == pytest.approx(1.0)


def test_kappa_three_classes_by_hand():
    t = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    p = [0, 0, 1, 1, 2, 2, 2, 2, 0, 2]
    # Agreement 7/10; marginals truth (3, 2, 5), pred (3, 2, 5) -> chance (9 + 4 + 25)/100.
    po, pe = 0.7, 0.38
    assert classification_metrics(t, p)["kappa"] == pytest.approx((po - pe) / (1 - pe))


def test_single_class_agreement_is_undefined_not_made_up():
    m = classification_metrics([1, 1, 1], [1, 1, 1])
    assert m["accuracy"] == 1.0
    assert math.isnan(m["kappa"]) and math.isnan(m["krippendorff_alpha"])
    assert m["roc_auc_ovr"] is None


# --------------------------------------------------------------------------- classification


def test_classification_scores_match_sklearn():
    t, proba, p = _classifier(400, 8, seed=1, skill=0.3)
    m = classification_metrics(t, p, proba)
    assert m["accuracy"] == pytest.approx(np.mean(t == p))
    assert m["f1_macro"] == pytest.approx(f1_score(t, p, average="macro"))
    assert m["f1_weighted"] == pytest.approx(f1_score(t, p, average="weighted"))
    assert m["precision_macro"] == pytest.approx(precision_score(t, p, average="macro"))
    assert m["recall_macro"] == pytest.approx(recall_score(t, p, average="macro"))
    assert m["kappa"] == pytest.approx(cohen_kappa_score(t, p))
    assert m["roc_auc_ovr"] == pytest.approx(roc_auc_score(t, proba, multi_class="ovr"))
    onehot = label_binarize(t, classes=range(8))
    assert m["pr_auc_macro"] == pytest.approx(average_precision_score(onehot, proba))
    cm = np.asarray(m["confusion_matrix"])
    assert cm.shape == (8, 8) and cm.sum() == 400
    assert cm[3].sum() == np.sum(t == 3)  # rows are the truth
    assert m["confusion_labels"] == m["labels"]  # nothing predicted outside the scored labels
    assert m["labels"] == list(EXPRESSIONS) and m["labels_left_out"] == []


def test_seven_class_data_has_no_fake_contempt_class_and_auc_skips_it():
    t, proba, p = _classifier(300, 7, seed=2, skill=0.4)
    p[:5] = 7  # the 8-class model sometimes says Contempt
    m = classification_metrics(t, p, proba, labels=range(8))
    assert "Contempt" not in m["labels"] and m["labels_left_out"] == ["Contempt"]
    # Every face is in a cell: the Contempt predictions are a column of their own, its true
    # row all zeros (the data has none), and the matrix names its classes.
    cm = np.asarray(m["confusion_matrix"])
    assert cm.shape == (8, 8) and cm.sum() == 300 and cm[7].sum() == 0
    assert cm[:, 7].sum() == np.sum(p == 7) and m["confusion_labels"] == list(EXPRESSIONS)
    assert m["n_pred_outside_labels"] == np.sum(p == 7)
    seven = list(range(7))
    assert m["f1_macro"] == pytest.approx(f1_score(t, p, labels=seven, average="macro"))
    # A Contempt prediction is a miss for the true class, not a dropped row.
    assert m["recall_macro"] == pytest.approx(recall_score(t, p, labels=seven, average="macro"))
    assert m["accuracy"] == pytest.approx(np.mean(t == p))
    # AUC: Contempt is absent from the truth -> skipped and reported, no crash.
    assert m["auc_skipped"] == ["Contempt"]
    expected = np.mean([roc_auc_score(t == c, proba[:, c]) for c in seven])
    assert m["roc_auc_ovr"] == pytest.approx(expected)
    expected_pr = np.mean([average_precision_score(t == c, proba[:, c]) for c in seven])
    assert m["pr_auc_macro"] == pytest.approx(expected_pr)


def test_restricting_predictions_to_the_data_label_space():
    proba = np.array(
        [[0.1, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.7], [0.6, 0.1, 0.1, 0.1, 0.0, 0.0, 0.0, 0.1]]
    )
    pred, kept = restrict_predictions(proba, range(7))
    assert pred.tolist() == [1, 0]
    np.testing.assert_allclose(kept.sum(axis=1), 1.0)
    assert (kept[:, 7] == 0).all()
    t, proba, _ = _classifier(200, 7, seed=3)
    res = evaluate_predictions(
        {"expression": t, "expression_proba": proba}, "m", data_classes=range(7), n_boot=0
    )
    assert res["expression"]["n_pred_outside_labels"] == 0
    assert res["expression"]["restricted_to"] == list(EXPRESSIONS[:7])


def _saved_predictions(t: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """A predictions file's expression columns: truth, argmax and the p_<Class> softmax."""
    table = pd.DataFrame({"expression": t, "expression_pred": proba.argmax(axis=1)})
    for c, name in enumerate(EXPRESSIONS):
        table[f"p_{name}"] = proba[:, c].astype(np.float32)
    return table


def _auc_from_file(table: pd.DataFrame, classes: range) -> tuple[float, float]:
    """ROC-AUC and PR-AUC as a reader recomputes them from the saved p_ columns."""
    t = table["expression"].to_numpy()
    columns = [table[f"p_{EXPRESSIONS[c]}"].to_numpy() for c in classes]
    roc = np.mean([roc_auc_score(t == c, col) for c, col in zip(classes, columns, strict=True)])
    pr = np.mean(
        [average_precision_score(t == c, col) for c, col in zip(classes, columns, strict=True)]
    )
    return float(roc), float(pr)


def test_the_aucs_are_those_of_the_saved_probability_columns():
    from helpers.evaluation.scoring import evaluate

    t, proba, _ = _classifier(300, 7, seed=5, skill=0.4)  # seven classes, as FER-2013
    table = _saved_predictions(t, proba)
    m = evaluate("m", table, n_boot=0, classes=range(7))["expression"]
    roc, pr = _auc_from_file(table, range(7))
    assert m["roc_auc_ovr"] == pytest.approx(roc, abs=1e-12)
    assert m["pr_auc_macro"] == pytest.approx(pr, abs=1e-12)


def test_a_head_constant_but_for_rounding_has_no_auc():
    from helpers.evaluation.scoring import evaluate

    rng = np.random.default_rng(0)
    t = rng.integers(0, 8, 200)
    flat = np.full((200, 8), 1 / 8) + rng.normal(0, 2e-8, (200, 8))  # a collapsed softmax
    m = evaluate("m", _saved_predictions(t, flat), n_boot=0)["expression"]
    assert m["roc_auc_ovr"] is None and m["pr_auc_macro"] is None
    assert m["accuracy"] == pytest.approx(np.mean(t == flat.argmax(axis=1)))  # still scored
    _, alive, _ = _classifier(200, 8, seed=6, skill=0.2)  # a head that varies keeps its AUCs
    assert evaluate("m", _saved_predictions(t, alive), n_boot=0)["expression"]["roc_auc_ovr"]


def test_a_weak_head_keeps_its_auc_and_one_varying_by_rounding_alone_has_none():
    """One rule for both heads: a spread within float32 rounding of its scale is constant."""
    rng = np.random.default_rng(3)
    t = rng.integers(0, 8, 300)
    signal = np.eye(8)[t] + rng.normal(0, 0.5, (300, 8))
    for spread, kept in ((5e-4, True), (1e-8, False)):  # 0.05 % of the mean, then rounding
        proba = (np.full((300, 8), 1 / 8) * (1 + spread * signal)).astype(np.float32)
        m = classification_metrics(t, proba.argmax(axis=1), proba)
        assert (m["roc_auc_ovr"] is not None) is kept, (spread, m["roc_auc_ovr"])
        assert (m["pr_auc_macro"] is not None) is kept
    truth = rng.uniform(-1, 1, 300)
    weak = regression_metrics(truth, 0.3 + 1e-4 * truth)  # its spread 1e-4 of the targets'
    assert weak["corr"] == pytest.approx(1.0)
    assert math.isnan(regression_metrics(truth, 0.3 + 1e-8 * truth)["corr"])


def test_missing_truth_is_dropped_and_fewer_than_two_classes_give_no_auc():
    m = classification_metrics([-1, 2, 2, -1], [0, 2, 1, 3], np.full((4, 8), 1 / 8))
    assert m["n"] == 2 and m["n_dropped"] == 2
    assert m["roc_auc_ovr"] is None and m["pr_auc_macro"] is None
    assert classification_metrics([-1, -1], [0, 1]) is None


def test_per_class_report_matches_sklearn():
    t, _, p = _classifier(200, 7, seed=4, skill=0.5)
    rep = per_class_report(t, p)
    assert list(rep.index) == list(EXPRESSIONS[:7])
    np.testing.assert_allclose(rep["f1"], f1_score(t, p, labels=range(7), average=None))
    assert rep["support"].tolist() == np.bincount(t, minlength=7).tolist()


def test_the_metrics_keep_each_classs_scores_for_the_json():
    """Per-class precision, recall, F1 and support land in the metrics, by class name in
    label order, on the same rows as the summary (a missing truth dropped)."""
    t, _, p = _classifier(200, 7, seed=4, skill=0.5)
    t = t.copy()
    t[:5] = -1  # no label: not scored, as in the summary
    m = classification_metrics(t, p, labels=range(7))
    kept = t >= 0
    prec, rec, f1, support = precision_recall_fscore_support(
        t[kept], p[kept], labels=range(7), average=None, zero_division=0
    )
    assert list(m["per_class"]) == m["labels"] == list(EXPRESSIONS[:7])
    for i, name in enumerate(m["labels"]):
        scores = m["per_class"][name]
        assert scores == pytest.approx(
            {"precision": prec[i], "recall": rec[i], "f1": f1[i], "support": support[i]}
        )
        assert isinstance(scores["support"], int)
    assert sum(s["support"] for s in m["per_class"].values()) == m["n"]
    assert json.loads(json.dumps(m["per_class"])) == m["per_class"]  # JSON as it is
    table = per_class_report(t, p, labels=range(7))
    assert table["f1"].tolist() == pytest.approx([m["per_class"][c]["f1"] for c in m["labels"]])


def test_map_label_space():
    fer = np.array([0, 1, 2, 3, 4, 5, 6, -1])
    shared = map_label_space(fer, "fer")
    assert [EXPRESSIONS[i] for i in shared[:7]] == [
        "Anger",
        "Disgust",
        "Fear",
        "Happy",
        "Sad",
        "Surprise",
        "Neutral",
    ]
    assert shared[7] == -1
    back = map_label_space(np.arange(8), "affectnet", "fer")
    assert back.tolist() == [6, 3, 4, 5, 2, 1, 0, -1]  # no Contempt in FER order
    with pytest.raises(ConfigError):
        map_label_space(fer, "nope")
    with pytest.raises(ValueError, match="do not exist"):
        map_label_space([7], "fer")


# --------------------------------------------------------------------------- regression


def test_ccc_identical_shifted_scaled():
    y = np.array([1.0, 2.0, 3.0, 4.0])  # population variance 1.25
    assert ccc(y, y) == pytest.approx(1.0)
    # Shift by 1: 2 * 1.25 / (1.25 + 1.25 + 1) = 5/7.
    assert ccc(y, y + 1) == pytest.approx(5 / 7)
    # Scale by 2: cov 2.5, var 1.25 and 5, means 2.5 and 5 -> 5 / 12.5.
    assert ccc(y, 2 * y) == pytest.approx(0.4)
    assert regression_metrics(y, y + 1)["ccc"] == pytest.approx(5 / 7)


def test_sagr_counts_zero_as_its_own_sign():
    t = [0.0, 0.5, -0.5, 0.0, -0.2]
    p = [0.0, 0.1, 0.2, 0.3, -0.1]
    # matches: 0/0 yes, +/+ yes, -/+ no, 0/+ no, -/- yes
    assert regression_metrics(t, p)["sagr"] == pytest.approx(3 / 5)
    assert regression_metrics([0.1, 0.2, -0.3], [0.0, 0.0, -0.1])["sagr"] == pytest.approx(1 / 3)


def test_regression_scores_match_references_and_mask_nan():
    rng = np.random.default_rng(5)
    t = rng.uniform(-1, 1, 100)
    p = np.clip(t + rng.normal(0, 0.3, 100), -1, 1)
    t_nan = t.copy()
    t_nan[::10] = np.nan
    m = regression_metrics(t_nan, p)
    keep = np.isfinite(t_nan)
    tk, pk = t[keep], p[keep]
    assert m["n"] == keep.sum() == 90
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((tk - pk) ** 2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(tk - pk)))
    assert m["r2"] == pytest.approx(r2_score(tk, pk))
    assert m["corr"] == pytest.approx(stats.pearsonr(tk, pk).statistic)
    assert regression_metrics([np.nan, np.nan], [0.1, 0.2]) is None
    with pytest.raises(ValueError, match="NaN"):
        regression_metrics([0.1, 0.2], [np.nan, 0.2])


def test_undefined_regression_values_are_nan_not_invented():
    m = regression_metrics([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])
    assert math.isnan(m["r2"]) and math.isnan(m["corr"])
    assert math.isnan(regression_metrics([0.3], [0.3])["corr"])


def test_constant_predictions_have_no_correlation_or_sign_agreement(tmp_path):
    """A saturated head's outputs differ only by float rounding: Pearson's r and SAGR of them
    would measure the rounding, so both are missing (null in the JSON), as for equal outputs;
    the spread is the health check's own measure."""
    from helpers.core.jsonio import read_json
    from helpers.evaluation.health import regression_health
    from helpers.evaluation.scoring import write_metrics

    rng = np.random.default_rng(7)
    t = rng.uniform(-1, 1, 200)
    rounding = 0.3 + 1e-8 * rng.normal(size=200)
    for p in (rounding, np.full(200, 0.3)):
        m = regression_metrics(t, p)
        assert math.isnan(m["corr"]) and math.isnan(m["sagr"]), m
        assert abs(m["ccc"]) < 1e-6 and m["rmse"] > 0
    from helpers.evaluation.metrics import spread_ratio  # the one measure of spread

    assert regression_health(t, rounding, "valence")["spread_ratio"] == spread_ratio(t, rounding)
    write_metrics({"valence": regression_metrics(t, rounding)}, tmp_path / "m.json")
    written = read_json(tmp_path / "m.json")["valence"]
    assert written["corr"] is None and written["sagr"] is None
    # Outputs that vary, however weakly, keep both.
    weak = regression_metrics(t, 0.01 * t + 0.3)
    assert weak["corr"] == pytest.approx(1.0) and weak["sagr"] == pytest.approx(np.mean(t > 0))


# --------------------------------------------------------------------------- landmarks


def test_nme_of_a_uniform_one_pixel_shift_is_two_percent():
    rng = np.random.default_rng(6)
    true = np.stack([_face(rng) for _ in range(4)])
    pred = true + np.array([1.0, 0.0])
    m = landmark_nme(true, pred)
    assert m["nme"] == pytest.approx(0.02) and m["nme_median"] == pytest.approx(0.02)
    assert m["failure_rate"] == 0.0 and m["n"] == 4
    # Flat (N, 136) layout is accepted too.
    assert landmark_nme(true.reshape(4, 136), pred.reshape(4, 136))["nme"] == pytest.approx(0.02)


def test_nme_failure_rate_median_and_missing_rows():
    rng = np.random.default_rng(7)
    true = np.stack([_face(rng) for _ in range(5)])
    pred = true.copy()
    pred[0] += (10.0, 0.0)  # 10 px / 50 px = 0.2: a failure
    pred[1] += (0.0, 2.0)  # 0.04
    true[4] = np.nan  # no truth: skipped
    m = landmark_nme(true, pred)
    assert m["n"] == 4
    assert m["nme"] == pytest.approx((0.2 + 0.04) / 4)
    assert m["nme_median"] == pytest.approx(0.02)  # of 0.2, 0.04, 0, 0
    assert m["failure_rate"] == pytest.approx(0.25)
    assert landmark_nme(np.full((2, 68, 2), np.nan), np.zeros((2, 68, 2))) is None


# --------------------------------------------------------------------------- bootstrap


def test_batched_confusion_metrics_equal_sklearn_per_resample():
    t, _, p = _classifier(150, 7, seed=8, skill=0.3)
    p[:4] = 7
    labels = np.arange(7)
    idx = np.random.default_rng(0).integers(0, 150, (5, 150))
    conf = _confusions(t[idx], p[idx], labels)
    f1, kappa = _f1_macro(conf, np.arange(7)), _kappa(conf)
    for b in range(5):
        tb, pb = t[idx[b]], p[idx[b]]
        assert f1[b] == pytest.approx(
            f1_score(tb, pb, labels=labels, average="macro", zero_division=0)
        )
        assert kappa[b] == pytest.approx(cohen_kappa_score(tb, pb))


def test_bootstrap_ci_contains_estimate_is_seeded_and_narrows_with_data():
    def acc(t, p):
        return (t == p).mean(axis=-1)

    t, _, p = _classifier(200, 8, seed=9, skill=0.5)
    low, high = bootstrap_ci(acc, t, p, n_boot=300, seed=1, batched=True)
    assert low <= np.mean(t == p) <= high
    assert bootstrap_ci(acc, t, p, n_boot=300, seed=1, batched=True) == (low, high)
    assert bootstrap_ci(acc, t, p, n_boot=300, seed=2, batched=True) != (low, high)
    # The looped path sees the very same resamples.
    looped = bootstrap_ci(lambda a, b: np.mean(a == b), t, p, n_boot=300, seed=1)
    assert looped == pytest.approx((low, high))
    t4, _, p4 = _classifier(3200, 8, seed=9, skill=0.5)
    low4, high4 = bootstrap_ci(acc, t4, p4, n_boot=300, seed=1, batched=True)
    assert high4 - low4 < 0.5 * (high - low)


def test_confidence_intervals_for_every_headline_metric():
    t, _, p = _classifier(300, 7, seed=10, skill=0.5)
    m = with_confidence_intervals(classification_metrics(t, p), "expression", t, p, n_boot=200)
    for key in ("accuracy", "f1_macro", "kappa"):
        low, high = m[f"{key}_ci"]
        assert low <= m[key] <= high, key
    rng = np.random.default_rng(11)
    y = rng.uniform(-1, 1, 300)
    yp = y + rng.normal(0, 0.3, 300)
    r = with_confidence_intervals(regression_metrics(y, yp), "valence", y, yp, n_boot=200)
    for key in ("ccc", "rmse"):
        assert r[f"{key}_ci"][0] <= r[key] <= r[f"{key}_ci"][1], key
    true = np.stack([_face(rng) for _ in range(50)])
    pred = true + rng.normal(0, 1.5, true.shape)
    lm = with_confidence_intervals(landmark_nme(true, pred), "landmarks", true, pred, n_boot=200)
    assert lm["nme_ci"][0] <= lm["nme"] <= lm["nme_ci"][1]
    assert with_confidence_intervals(None, "landmarks", true, pred) is None
    with pytest.raises(ConfigError):
        with_confidence_intervals(r, "valence", y, yp, keys=("kappa",))


def test_a_grouped_bootstrap_draws_whole_groups_so_alike_rows_are_not_counted_as_independent():
    """40 people, 10 faces each, every face of a person right or wrong alike: over the faces
    the interval is as narrow as 400 independent faces would give, drawing people it is as
    wide as 40; each face its own group is the plain bootstrap, resample for resample."""

    def acc(t, p):
        return (t == p).mean(axis=-1)

    rng = np.random.default_rng(3)
    right = rng.random(40) < 0.6
    t = np.zeros(400, dtype=np.int64)
    p = np.repeat(np.where(right, 0, 1), 10)
    people = np.repeat(np.arange(40), 10)
    faces = bootstrap_ci(acc, t, p, n_boot=1000, seed=0, batched=True)
    grouped = bootstrap_ci(acc, t, p, n_boot=1000, seed=0, batched=True, groups=people)
    alone = bootstrap_ci(acc, t[::10], p[::10], n_boot=1000, seed=0, batched=True)
    assert grouped[1] - grouped[0] > 2.5 * (faces[1] - faces[0])
    assert grouped[1] - grouped[0] == pytest.approx(alone[1] - alone[0], rel=0.2)
    assert grouped[0] <= acc(t, p) <= grouped[1]
    singles = bootstrap_ci(acc, t, p, n_boot=1000, seed=0, batched=True, groups=np.arange(400))
    assert singles == faces
    with pytest.raises(ValueError, match="39 group labels for 400 rows"):
        bootstrap_ci(acc, t, p, n_boot=10, groups=people[:39])


def test_grouped_intervals_follow_the_rows_each_head_scores():
    """Faces a head does not score (no label, a class outside label_ids, NaN valence, landmarks
    without truth) drop their group labels with them: the grouped interval is the one of the
    scored faces alone, and on people who are right or wrong alike it is the wider one."""
    rng = np.random.default_rng(4)
    people = np.repeat(np.arange(30), 8)
    t = np.repeat(rng.integers(0, 3, 30), 8)
    p = np.where(np.repeat(rng.random(30) < 0.7, 8), t, (t + 1) % 3)
    t_missing = t.copy()
    t_missing[::5] = -1  # a fifth of the faces unlabelled
    t_missing[1::9] = 7  # and some of a class outside the scored ones
    scored = np.isin(t_missing, [0, 1, 2])
    m = classification_metrics(t_missing, p, labels=[0, 1, 2])
    grouped = with_confidence_intervals(m, "expression", t_missing, p, n_boot=300, groups=people)
    kept = classification_metrics(t[scored], p[scored], labels=[0, 1, 2])
    same = with_confidence_intervals(
        kept, "expression", t[scored], p[scored], n_boot=300, groups=people[scored]
    )
    assert grouped["accuracy_ci"] == same["accuracy_ci"]
    plain = with_confidence_intervals(kept, "expression", t[scored], p[scored], n_boot=300)
    width = np.diff(grouped["accuracy_ci"])[0]
    assert width > 1.8 * np.diff(plain["accuracy_ci"])[0]
    y = np.repeat(rng.uniform(-1, 1, 30), 8)
    yp = y + np.repeat(rng.normal(0, 0.4, 30), 8)  # each person's error the same
    y_missing = y.copy()
    y_missing[::7] = np.nan
    keep = np.isfinite(y_missing)
    r = with_confidence_intervals(
        regression_metrics(y_missing, yp), "valence", y_missing, yp, n_boot=300, groups=people
    )
    alone = with_confidence_intervals(
        regression_metrics(y[keep], yp[keep]), "valence", y[keep], yp[keep], n_boot=300,
        groups=people[keep],
    )  # fmt: skip
    assert r["ccc_ci"] == alone["ccc_ci"]
    faces = np.stack([_face(rng) for _ in range(40)])
    guess = faces + np.repeat(rng.normal(0, 3, (8, 1, 1)), 5, axis=0) + rng.normal(
        0, 0.5, faces.shape
    )  # fmt: skip
    faces[::6] = np.nan  # no truth
    who = np.repeat(np.arange(8), 5)
    lm = with_confidence_intervals(
        landmark_nme(faces, guess), "landmarks", faces, guess, n_boot=300, groups=who
    )
    ok = np.isfinite(faces).all(axis=(1, 2))
    lm_alone = with_confidence_intervals(
        landmark_nme(faces[ok], guess[ok]), "landmarks", faces[ok], guess[ok], n_boot=300,
        groups=who[ok],
    )  # fmt: skip
    assert lm["nme_ci"] == lm_alone["nme_ci"]
    with pytest.raises(ValueError, match="29 group labels for 240 rows"):
        with_confidence_intervals(m, "expression", t_missing, p, n_boot=10, groups=people[:29])
    with pytest.raises(ValueError, match="paired_difference: 29 group labels for 240 rows"):
        paired_difference(
            "expression", "accuracy", (t, p), (t, t), label_ids=[0, 1, 2], groups=people[:29]
        )


def test_group_labels_missing_or_of_one_group_are_not_merged_into_a_person():
    """A face without a person (None, NaN) is a group of its own; 1 and "1" are two labels;
    scored faces all of one group resample faces, never giving an interval of zero width."""
    codes = group_codes([None, "a", float("nan"), "a", 1, "1", None])
    assert len(set(codes)) == 6 and codes[1] == codes[3] and codes[0] != codes[6]

    def acc(t, p):
        return (t == p).mean(axis=-1)

    t, p = np.zeros(50, dtype=np.int64), (np.arange(50) % 3 == 0).astype(np.int64)
    one = bootstrap_ci(acc, t, p, n_boot=200, seed=0, batched=True, groups=["x"] * 50)
    assert one == bootstrap_ci(acc, t, p, n_boot=200, seed=0, batched=True)
    assert one[1] - one[0] > 0.1


# --------------------------------------------------------------------------- calibration


def test_ece_of_calibrated_predictions_is_near_zero():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0, 1, 200_000)
    correct = rng.uniform(0, 1, confidence.size) < confidence  # right as often as it says
    assert expected_calibration_error(correct, confidence) < 0.02
    # The same confidences with a coin flip's accuracy are far from calibrated.
    assert expected_calibration_error(rng.uniform(0, 1, confidence.size) < 0.5, confidence) > 0.2


def test_ece_of_an_overconfident_model_is_its_gap():
    correct = np.arange(1000) % 2 == 0  # right half the time, always fully sure
    assert expected_calibration_error(correct, np.ones(1000)) == pytest.approx(0.5)


def test_ece_by_hand_ignores_empty_bins():
    correct = [0, 1, 1, 1, 0]
    confidence = [0.1, 0.1, 0.5, 0.95, 0.95]
    # 15 bins of 1/15: 0.1 in (1/15, 2/15], 0.5 in (7/15, 8/15], 0.95 in (14/15, 1].
    # 2/5 * |0.5 - 0.1| + 1/5 * |1 - 0.5| + 2/5 * |0.5 - 0.95| = 0.16 + 0.1 + 0.18 = 0.44;
    # the 12 bins without rows add nothing (and no NaN).
    assert expected_calibration_error(correct, confidence) == pytest.approx(0.44)
    bins = reliability_bins(correct, confidence)
    assert len(bins) == 15 and bins["count"].tolist() == [0, 2] + [0] * 5 + [1] + [0] * 6 + [2]
    assert bins.loc[1, "accuracy"] == pytest.approx(0.5)
    assert bins.loc[14, "confidence"] == pytest.approx(0.95)
    assert bins.loc[bins["count"] == 0, ["accuracy", "confidence"]].isna().all().all()
    np.testing.assert_allclose(bins["high"] - bins["low"], 1 / 15)
    # One bin: |3/5 - 2.6/5| = 0.08, overall accuracy against overall mean confidence.
    assert expected_calibration_error(correct, confidence, n_bins=1) == pytest.approx(0.08)


def test_reliability_bins_are_right_closed_with_one_in_the_last():
    bins = reliability_bins([True, False, True, True], [1.0, 0.0, 2 / 15, 0.5])
    assert bins["count"].iloc[-1] == 1 and bins["accuracy"].iloc[-1] == 1.0
    assert bins["count"].iloc[0] == 1  # 0 has no bin below the first
    assert bins["count"].iloc[1] == 1  # an edge belongs to the bin it closes: (1/15, 2/15]
    assert bins["count"].sum() == 4
    with pytest.raises(ConfigError, match="reliability_bins: confidences must be in"):
        reliability_bins([True], [1.5])
    assert math.isnan(expected_calibration_error([], []))


def test_ece_in_the_metrics_json_uses_the_renormalised_top_probability():
    t, proba, p = _classifier(400, 7, seed=5, skill=0.6)
    proba[:, 7] += 0.5  # Contempt soaks up mass the 7-class data set cannot use
    proba /= proba.sum(axis=1, keepdims=True)
    plain = evaluate_predictions({"expression": t, "expression_proba": proba}, n_boot=0)
    pred = proba.argmax(axis=1)
    assert plain["expression"]["ece"] == pytest.approx(
        expected_calibration_error(pred == t, proba.max(axis=1))
    )
    seven = evaluate_predictions(
        {"expression": t, "expression_proba": proba}, data_classes=range(7), n_boot=0
    )
    pred, kept = restrict_predictions(proba, range(7))
    expected = expected_calibration_error(pred == t, kept.max(axis=1))
    assert seven["expression"]["ece"] == pytest.approx(expected)
    raw = expected_calibration_error(pred == t, proba[np.arange(t.size), pred])
    assert abs(expected - raw) > 0.05  # renormalising matters here
    # Only the scored rows count: a row without truth adds nothing.
    t_missing = np.concatenate([t, [-1, -1]])
    with_missing = np.vstack([proba, np.eye(8)[[7, 7]]])
    again = evaluate_predictions(
        {"expression": t_missing, "expression_proba": with_missing}, n_boot=0
    )
    assert again["expression"]["ece"] == pytest.approx(plain["expression"]["ece"])
    # Without probabilities there is nothing to calibrate: null, not a number.
    labels_only = evaluate_predictions({"expression": t, "expression_pred": p}, n_boot=0)
    assert labels_only["expression"]["ece"] is None
    assert json.loads(json.dumps(json_ready(labels_only)))["expression"]["ece"] is None


# --------------------------------------------------------------------------- whole model


def _prediction_table(n: int = 120) -> pd.DataFrame:
    """A FER-like table: 7 classes, no valence/arousal, landmarks for some faces only."""
    rng = np.random.default_rng(12)
    t, proba, p = _classifier(n, 7, seed=12)
    faces = [_face(rng) if i % 3 else None for i in range(n)]
    return pd.DataFrame(
        {
            "expression": t,
            "expression_pred": p,
            "expression_proba": list(proba),
            "valence": np.nan,
            "valence_pred": rng.uniform(-1, 1, n),
            "arousal": np.nan,
            "arousal_pred": rng.uniform(-1, 1, n),
            "landmarks": faces,
            "landmarks_pred": [
                f + 1.0 if f is not None else rng.uniform(0, 200, (68, 2)) for f in faces
            ],
        }
    )


def test_evaluate_predictions_contract_and_null_heads():
    res = evaluate_predictions(_prediction_table(), model="custom_cnn", n_boot=100)
    assert list(res) == ["model", "n", "expression", "valence", "arousal", "landmarks"]
    assert res["model"] == "custom_cnn" and res["n"] == 120
    assert res["valence"] is None and res["arousal"] is None  # all-NaN targets: null heads
    assert res["landmarks"]["n"] == 80 and res["landmarks"]["nme"] > 0
    expr = res["expression"]
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
        "ece",
        "confusion_matrix",
        "labels",
        "accuracy_ci",
        "f1_macro_ci",
        "kappa_ci",
    ):
        assert key in expr, key
    assert "Contempt" not in expr["labels"]
    # Heads without columns (the model has none) are null too.
    only = evaluate_predictions({"expression": [0, 1, 1], "expression_pred": [0, 1, 0]}, n_boot=0)
    assert only["landmarks"] is None and only["valence"] is None
    assert only["expression"]["accuracy"] == pytest.approx(2 / 3)


def test_result_survives_a_json_round_trip_without_nan():
    table = _prediction_table()
    table.loc[:59, "valence"] = np.linspace(-1, 1, 60)
    res = evaluate_predictions(table, n_boot=50)
    res["expression"]["extra"] = {
        "nan": np.float32("nan"),
        "arr": np.arange(3),
        "flag": np.bool_(True),
        "ci": (np.float64(0.1), 0.2),
    }
    text = json.dumps(json_ready(res), allow_nan=False)
    back = json.loads(text)
    assert back["valence"]["n"] == 60
    assert back["expression"]["extra"] == {
        "nan": None,
        "arr": [0, 1, 2],
        "flag": True,
        "ci": [0.1, 0.2],
    }
    assert back["expression"]["confusion_matrix"] == res["expression"]["confusion_matrix"]


def test_a_missing_class_name_is_missing_whichever_marker_pandas_or_python_writes() -> None:
    """None, NaN (what pandas writes, e.g. mapping a label of -1 to names) and pd.NA in a
    column of class names are missing labels, left out like -1; an unknown name is refused."""
    names = pd.Series([0, 2, -1, 2]).map(dict(enumerate(EXPRESSIONS)))  # NaN for the -1
    assert names.isna().sum() == 1
    want = classification_metrics([0, 2, -1, 2], [0, 2, 1, 1])
    assert want is not None and want["n"] == 3
    for missing in (None, np.nan, pd.NA):
        truth = pd.Series(["Neutral", "Sad", missing, "Sad"], dtype=object)
        got = classification_metrics(truth, [0, 2, 1, 1])
        assert got is not None and got["n"] == 3 and got["accuracy"] == want["accuracy"]
    assert classification_metrics(names, [0, 2, 1, 1])["accuracy"] == want["accuracy"]
    with pytest.raises(ConfigError, match="got 'nan!'"):
        classification_metrics(["Sad", "nan!"], [2, 2])


def test_labels_take_class_names_as_y_true_does_and_refuse_an_unknown_one_by_name() -> None:
    """`labels=` names classes as y_true and y_pred may: names score as their indices, and a
    misspelt name is the one-line ConfigError naming it, not an int() ValueError."""
    t, p = [1, 2, 1, 2, 0], [1, 2, 2, 2, 0]
    by_index = classification_metrics(t, p, labels=[1, 2])
    by_name = classification_metrics(t, p, labels=["Happy", "Sad"])
    assert by_name == by_index and by_name is not None and by_name["labels"] == ["Happy", "Sad"]
    assert per_class_report(t, p, labels=["Happy"]).index.tolist() == ["Happy"]
    with pytest.raises(ConfigError, match=r"^labels: class labels must be .*got 'Sadd'$"):
        classification_metrics(t, p, labels=["Happy", "Sadd"])


def test_undefined_notes_name_a_constant_head_only_when_it_is_one():
    """No probabilities, or a head that varies, leave AUC/SAGR null or not without the note."""
    from helpers.evaluation.metrics import undefined_notes

    t, p = [0, 1, 2, 1, 0], [0, 1, 1, 1, 2]
    assert undefined_notes({"expression": classification_metrics(t, p)}) == []
    flat = np.tile([0.2, 0.3, 0.5], (5, 1))
    constant = undefined_notes({"expression": classification_metrics(t, p, proba=flat)})
    assert len(constant) == 1 and "the same for every face" in constant[0]
    varied = regression_metrics([-0.5, 0.1, 0.4], [-0.2, 0.0, 0.3])
    assert not varied["constant"] and undefined_notes({"valence": varied}) == []
    assert undefined_notes({"valence": {**varied, "sagr": None}}) == []
    same = regression_metrics([-0.5, 0.1, 0.4], [0.1, 0.1, 0.1])
    assert (
        same["constant"]
        and "valence: the predictions" in undefined_notes({"arousal": None, "valence": same})[0]
    )


def test_confusion_reads_its_classes_or_an_older_files_labels():
    """A model predicting a class the test set lacks: the grid's classes, not the scored ones."""
    from helpers.evaluation.comparison import MetricsFile
    from helpers.evaluation.metrics import confusion

    block = classification_metrics([0, 1, 0, 1], [0, 1, 2, 1])
    matrix, names = confusion(block)
    assert names == ["Neutral", "Happy", "Sad"] and len(matrix) == 3 != len(block["labels"])
    older = {k: v for k, v in block.items() if k != "confusion_labels"}
    assert confusion(older)[1] == block["labels"] and confusion(None) == ([], [])
    assert MetricsFile("m", None, 4, {"expression": block}, {}).confusion() == (matrix, names)
