"""Is a trained model alive? Tells a collapsed model (one class, constant outputs, chance level)
from a weak one, says what it predicts and the likely cause, so no report ranks a dead model.

An expression head collapses when most of its predictions are one class that is far rarer in
the truth (the other classes keep under a quarter of their true share: 85% Neutral predictions
for a test set 85% Neutral is no collapse, 100% Happy for one 30% Happy is), or when its
agreement with the truth is near chance: Cohen's kappa, 1 for perfect predictions and 0 for a
constant class or, on average, for classes guessed without looking at the face, whatever the
number of classes or their balance (a macro-F1 bar such as 1.5/K would call a sound two-class
model at 70% accuracy chance). A regression head collapses when its predictions barely vary
against the truth's spread, or agree with the truth no better than a constant does (CCC near
0); a landmark head when its NME is no better than always predicting the faces' average shape.
The cause is read from the training history where there is one: a model that learned in
training mode (BatchNorm on batch statistics) but not in inference mode has BatchNorm moving
statistics that lag behind its weights; one that learned nothing in either mode had a learning
rate too high for a randomly initialised network, or too few steps; one in between was still
learning slowly and needs more steps. After a training of one epoch (the smoke profile's, or
one its time budget stopped after the first), learning nothing is what is expected, and the note
says so instead. Notebook 04 judges the validation images and 05 the test images; a model close
to a line can fall either side of it on the two, so each note names its images, and rankings
follow the test images' verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.labels import EXPRESSIONS
from helpers.evaluation.metrics import (
    ccc,
    cohen_kappa,
    image_sizes,
    mean_shape_nme,
    per_image_nme,
    spread_ratio,
    stack_landmarks,
)

COLLAPSE_SHARE = 0.8  # one class for at least this share of predictions ...
OTHERS_KEPT = 0.25  # ... leaving the other classes under this share of their true share: collapsed
CHANCE_KAPPA = 0.1  # Cohen's kappa below this: agreement with the truth near chance (0)
FLAT_REGRESSION = 0.1  # prediction spread below this share of the truth's spread: constant
NO_AGREEMENT = 0.1  # concordance (CCC) below this: no better than a constant (CCC 0)
LANDMARK_GAIN = 0.9  # NME above this share of the average face shape's: learned no landmarks
LEARNED_FACTOR = 3.0  # training accuracy this many times chance: it learned in training
BARELY_FACTOR = 1.5  # below this many times chance: it learned nothing at all
# What a one-epoch training (the smoke profile's) is for: the pipeline running, not learning.
EXPECTED_THERE = "a model that learned nothing is expected here, not a broken install"


def one_epoch(epochs: int | None) -> bool:
    """Whether a training of `epochs` epochs is one epoch long, too short to learn in: the rule
    behind run_all's closing line and the collapse note of notebooks 04 and 05."""
    return epochs is not None and epochs <= 1


def expression_health(
    y_true: Any, y_pred: Any, labels: Sequence[int] | None = None, f1_macro: float | None = None
) -> dict[str, Any] | None:
    """Collapse check of class predictions (ids in AffectNet order); None with nothing to check.

    labels: the scored classes (default: those in y_true). f1_macro: the macro-F1 reported
    beside the verdict (default: computed here with scikit-learn on the scored classes).
    """
    from sklearn.metrics import f1_score

    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    keep = np.isfinite(t) & (t >= 0) & np.isfinite(p)
    t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
    if not len(t):
        return None
    scored = sorted(int(c) for c in (labels if labels is not None else np.unique(t)))
    k = max(len(scored), 2)
    if f1_macro is None:
        f1_macro = float(f1_score(t, p, labels=scored, average="macro", zero_division=0))
    classes, counts = np.unique(p, return_counts=True)
    top = int(classes[counts.argmax()])
    share = float(counts.max() / len(p))
    true_share = float(np.mean(t == top))
    one_class = share >= COLLAPSE_SHARE and 1.0 - share < OTHERS_KEPT * (1.0 - true_share)
    # One class in the truth: kappa is 0 whatever the accuracy (chance agreement is the share
    # predicted as that class, as is observed agreement), so it cannot tell chance from skill:
    # such a truth is not judged near chance (kappa None here, metrics' kappa 0).
    kappa = cohen_kappa(t, p) if np.unique(t).size > 1 else math.nan
    near_chance = not math.isnan(kappa) and kappa < CHANCE_KAPPA
    reasons = []
    if one_class:
        reasons.append(
            f"predicts {_name(top)} for {share:.0%} of images, though only {true_share:.0%} "
            f"are {_name(top)}"
        )
    if near_chance:
        reasons.append(
            f"its agreement with the truth is near chance (Cohen's kappa {kappa:.2f}: 0 is "
            f"guessing, 1 perfect; macro-F1 {f1_macro:.3f} over {k} classes)"
        )
    return {
        "collapsed": bool(reasons),
        "reasons": reasons,
        "one_class": one_class,
        "near_chance": near_chance,
        "top_class": _name(top),
        "top_share": share,
        "top_true_share": true_share,
        "classes_predicted": len(classes),
        "n_classes": k,
        "f1_macro": float(f1_macro),
        "chance_f1_macro": 1.0 / k,
        "kappa": None if math.isnan(kappa) else kappa,
    }


def regression_health(y_true: Any, y_pred: Any, head: str) -> dict[str, Any] | None:
    """Constant-output check of a valence or arousal head; None with nothing to check."""
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    keep = np.isfinite(t) & np.isfinite(p)
    t, p = t[keep], p[keep]
    if len(t) < 2 or float(t.std()) == 0.0:
        return None
    ratio = spread_ratio(t, p)
    agreement = float(ccc(t, p))
    reasons = []
    if ratio < FLAT_REGRESSION:
        reasons.append(
            f"{head} predictions barely vary (spread {ratio:.0%} of the truth's), "
            f"around {float(p.mean()):+.2f}"
        )
    elif not agreement >= NO_AGREEMENT:
        reasons.append(f"{head} CCC {agreement:.2f}: no better than a constant (CCC 0)")
    return {"collapsed": bool(reasons), "reasons": reasons, "spread_ratio": ratio, "ccc": agreement}


def landmark_health(true: Any, pred: Any, sizes: Any | None = None) -> dict[str, Any] | None:
    """Whether a landmark head beats the faces' average shape (metrics.mean_shape_nme); None
    with nothing to check. sizes: (N, 2) width and height of each image."""
    per_image = per_image_nme(true, pred)
    baseline = mean_shape_nme(true, sizes)
    if not per_image.size or not baseline:
        return None
    nme = float(per_image.mean())
    reasons = (
        [
            f"landmark NME {nme:.3f}, no better than always predicting the faces' average "
            f"shape ({baseline:.3f})"
        ]
        if nme > LANDMARK_GAIN * baseline
        else []
    )
    return {"collapsed": bool(reasons), "reasons": reasons, "nme": nme, "baseline_nme": baseline}


def prediction_health(
    predictions: pd.DataFrame | Mapping[str, Any],
    labels: Sequence[int] | None = None,
    f1_macro: float | None = None,
    split: str | None = None,
) -> dict[str, Any]:
    """Health of every head a prediction table has, and whether any collapsed. split: which
    images were predicted ("validation", "test"), named in health_text's verdict, since the two
    checks of one model can differ."""
    cols = predictions
    heads: dict[str, Any] = {}
    if "expression" in cols and "expression_pred" in cols:
        heads["expression"] = expression_health(
            cols["expression"], cols["expression_pred"], labels, f1_macro
        )
    for head in ("valence", "arousal"):
        if head in cols and f"{head}_pred" in cols:
            heads[head] = regression_health(cols[head], cols[f"{head}_pred"], head)
    if "landmarks" in cols and "landmarks_pred" in cols:
        heads["landmarks"] = landmark_health(
            stack_landmarks(cols["landmarks"]),
            stack_landmarks(cols["landmarks_pred"]),
            image_sizes(cols),
        )
    heads = {h: v for h, v in heads.items() if v is not None}
    return {
        "collapsed": any(v["collapsed"] for v in heads.values()),
        "collapsed_heads": [h for h, v in heads.items() if v["collapsed"]],
        **({"split": split} if split else {}),
        **heads,
    }


def training_accuracy_column(history: pd.DataFrame | None) -> str | None:
    """The history's training accuracy of the expression head: `expression_accuracy` beside
    other heads, plain `accuracy` when expression is the model's only head (Keras names a
    single output's metrics without it); None when it has neither."""
    columns = getattr(history, "columns", ())
    return next((c for c in ("expression_accuracy", "accuracy") if c in columns), None)


def likely_cause(
    history: pd.DataFrame | None, n_classes: int = len(EXPRESSIONS), short: str | None = None
) -> str:
    """Why a collapsed model collapsed, read from its training history (train vs validation).
    short: how a one-epoch training is named ("one epoch, profile smoke"): a model that learned
    nothing is then expected, and no learning rate is to blame."""
    generic = (
        "not told without its training history; most often a learning rate too high for a "
        "randomly initialised network, too few training steps, or BatchNorm statistics that "
        "lag behind the weights"
    )
    expected = f"it trained for {short}: {EXPECTED_THERE}; more epochs are what it needs"
    column = training_accuracy_column(history)
    if history is None or column is None:
        return expected if short else generic
    train_acc = pd.to_numeric(history[column], errors="coerce").dropna()
    if train_acc.empty:
        return expected if short else generic
    chance, best = 1.0 / max(n_classes, 2), float(train_acc.max())
    if best >= LEARNED_FACTOR * chance:
        return (
            f"it learned in training mode (training accuracy up to {best:.2f}) but not in "
            "inference mode: its BatchNorm moving statistics lag behind the weights "
            "(recalibrate them, or train longer with a faster BatchNorm momentum)"
        )
    if short:
        return (
            f"it trained for {short} (training accuracy at most {best:.2f}, chance "
            f"{chance:.2f}): {EXPECTED_THERE}; more epochs are what it needs"
        )
    if best >= BARELY_FACTOR * chance:
        return (
            f"it was still learning slowly (training accuracy up to {best:.2f}, chance "
            f"{chance:.2f}): it needs more steps (a longer time budget, smaller images) "
            "or a learning rate better suited to a randomly initialised network"
        )
    return (
        f"it learned nothing even in training mode (training accuracy at most {best:.2f}, "
        f"chance {chance:.2f}): the learning rate is likely too high for a randomly "
        "initialised network, or it had too few steps"
    )


def health_text(
    model: str,
    health: Mapping[str, Any] | None,
    history: pd.DataFrame | None = None,
    short: str | None = None,
) -> str:
    """One paragraph for a notebook or the report: alive, or collapsed with what and why
    (short: a one-epoch training's name, as likely_cause takes it), on which images it was
    judged; rankings follow the run's test images' verdict (notebook 05), not the validation's
    (04) or an external test set's (its name as the split)."""
    if not health:
        return f"{model}: nothing to check (no expression, valence or arousal predictions)."
    split = health.get("split")
    on = f" on the {split} images" if split else ""
    if not health.get("collapsed"):
        return f"{model}: learned (no head collapsed{on})."
    dead = list(health.get("collapsed_heads", []))
    reasons = "; ".join(r for h in dead for r in health[h]["reasons"])
    heads = ", ".join(dead)
    ranked = (
        "Notebook 05 checks it again on the test images, and rankings follow that check."
        if split == "validation"
        else f"Not ranked for {heads}."
        if split in (None, "test")
        # an external test set (metrics/<model>.<name>.json): rankings follow the run's own
        else "Rankings follow the run's own test images, not these."
    )
    if "expression" in dead:
        expression = health.get("expression") or {}
        n_classes = expression.get("n_classes", len(EXPRESSIONS))
        # Most predictions one class: collapsed; spread over classes but at chance: near chance.
        verdict = "collapsed" if expression.get("one_class", True) else "is near chance"
        return (
            f"**{model} {verdict}** ({heads}){on}: {reasons}. Likely cause: "
            f"{likely_cause(history, n_classes, short)}. {ranked}"
        )
    if short:
        return (
            f"**{model} learned nothing for {heads}**{on}: {reasons}. Likely cause: it trained "
            f"for {short}: {EXPECTED_THERE}. {ranked}"
        )
    return (
        f"**{model} learned nothing for {heads}**{on}: {reasons}. Usual causes: too few steps for "
        f"{'that head' if len(dead) == 1 else 'those heads'}, or a loss weight (`loss_weights`) "
        f"too small beside the expression loss. {ranked}"
    )


def _name(class_id: int) -> str:
    """Class name in the shared order, or the id when it is outside it."""
    return EXPRESSIONS[class_id] if 0 <= class_id < len(EXPRESSIONS) else str(class_id)
