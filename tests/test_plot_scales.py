"""Figures keep a metric's own scale, tell their lines apart without colour, and carry titles
that say what they show (helpers.reporting.plots, helpers.inference.video)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from figure_checks import check_figure
from helpers.reporting import plots


def _flat_block() -> dict:
    """A collapsed model's corruption scores: every corruption gives the clean score."""
    clean = {
        "expression": {"f1_macro": 0.0152},
        "valence": {"ccc": 0.003},
        "arousal": {"ccc": -0.0035},
        "landmarks": {"nme": 0.364},
    }
    names = ("blur", "noise", "dark", "flat", "jpeg", "low_resolution", "occlusion")
    return {
        "n": 31,
        "severities": [1, 2, 3],
        "clean": clean,
        "results": {name: {str(s): clean for s in (1, 2, 3)} for name in names},
    }


def test_corruption_panels_keep_the_metric_scale_and_say_when_lines_coincide() -> None:
    fig = check_figure(plots.plot_corruptions(_flat_block(), title="custom_cnn"))
    panels = {ax.get_title(): ax for ax in fig.axes if ax.axison}
    assert panels["expression macro F1"].get_ylim() == pytest.approx((0.0, 1.0))
    assert panels["valence CCC"].get_ylim() == pytest.approx((0.0, 1.0))
    assert panels["arousal CCC"].get_ylim() == pytest.approx((-1.0, 1.0))
    low, high = panels["landmarks NME (lower is better)"].get_ylim()
    assert low == 0.0 and high - low >= plots.MIN_SPAN
    for ax in panels.values():
        notes = [t.get_text() for t in ax.texts]
        assert any("all 7 corruptions score the same" in n for n in notes), ax.get_title()
    lines = panels["expression macro F1"].get_lines()
    styles = {(line.get_marker(), line.get_linestyle()) for line in lines}
    assert len(styles) == len(lines) == 7  # not told apart by colour alone
    assert fig.get_size_inches()[0] <= plots.PAGE_INCHES


def test_corruption_lines_that_differ_carry_no_coincidence_note() -> None:
    block = _flat_block()
    block["results"]["dark"] = {str(s): {"expression": {"f1_macro": 0.1}} for s in (1, 2, 3)}
    fig = check_figure(plots.plot_corruptions(block))
    f1 = next(ax for ax in fig.axes if ax.get_title() == "expression macro F1")
    assert not f1.texts


def _one_epoch() -> pd.DataFrame:
    """One epoch of a collapsed multi-task model, as Keras logs it (columns alphabetical)."""
    return pd.DataFrame(
        {
            "epoch": [0],
            "arousal_ccc": [0.0015],
            "expression_accuracy": [0.153],
            "landmarks_loss": [0.048],
            "loss": [4.57],
            "val_arousal_ccc": [np.nan],
            "val_expression_accuracy": [0.161],
            "val_landmarks_loss": [0.0129],
            "val_loss": [3.41],
            "val_valence_ccc": [0.113],
            "valence_ccc": [-0.02],
        }
    )


def test_one_epoch_bars_show_bounded_scores_on_their_full_scale_with_titles_in_words() -> None:
    fig = check_figure(plots.plot_learning_curves(_one_epoch(), title="resnet50"))
    panels = [ax for ax in fig.axes if ax.axison]
    titles = [ax.get_title() for ax in panels]
    assert titles == [
        "loss",
        "expression accuracy",
        "valence CCC",
        "arousal CCC",
        "landmarks loss",
    ]  # grouped per head, in words
    by_title = dict(zip(titles, panels, strict=True))
    assert by_title["expression accuracy"].get_ylim() == pytest.approx((0.0, 1.0))
    assert by_title["valence CCC"].get_ylim() == pytest.approx((-1.0, 1.0))
    assert by_title["arousal CCC"].get_ylim() == pytest.approx((0.0, 1.0))
    assert [t.get_text() for t in by_title["arousal CCC"].texts] == ["n/a"]  # val is NaN
    assert not by_title["valence CCC"].texts


def test_learning_curves_of_many_epochs_keep_accuracy_on_zero_to_one() -> None:
    history = pd.concat([_one_epoch()] * 3, ignore_index=True).assign(epoch=[0, 1, 2])
    fig = check_figure(plots.plot_learning_curves(history))
    accuracy = next(ax for ax in fig.axes if ax.get_title() == "expression accuracy")
    assert accuracy.get_ylim() == pytest.approx((0.0, 1.0))
    assert plots.metric_title("accuracy") == "accuracy"
    assert plots.metric_title("val_thing") == "val thing"


def _explained(tmp_path, rows: list[tuple[int, int, str]]) -> pd.DataFrame:
    """Grad-CAM rows (true class, predicted class, role) over one grey face without landmarks."""
    from PIL import Image

    from helpers.evaluation import heatmaps

    face = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48), 120, np.uint8)).save(face)
    heat = np.linspace(0, 1, 25, dtype=np.float32).reshape(5, 5)
    table = pd.DataFrame(
        [
            {
                "id": f"f{i}",
                "image": str(face),
                "expression": true,
                "expression_pred": pred,
                "role": role,
                "confidence": 0.18,
                "heatmap": heat,
                "on_face": 0.58,
                "region": heatmaps.CENTRE,
            }
            for i, (true, pred, role) in enumerate(rows)
        ]
    )
    table.attrs = {"layer": "block4_relu2 5x5"}
    return table


def test_the_gradcam_grid_packs_its_faces_and_says_what_each_number_is(tmp_path) -> None:
    rows = [(3, 3, "correct")] * 4 + [(6, 6, "correct"), (6, 3, "mistake"), (0, 0, "correct")]
    rows += [(5, 3, "")]  # a sampled Disgust face, neither correct nor a chosen mistake
    fig = check_figure(plots.plot_gradcam_grid(_explained(tmp_path, rows), title="custom_cnn"))
    faces = [ax for ax in fig.axes if ax.images]
    assert len(faces) == 7 and len(fig.axes) == 7 + 1  # no blank cells: the faces, one bar
    assert fig.get_size_inches()[0] <= plots.PAGE_INCHES
    fig.canvas.draw()
    bar = next(ax for ax in fig.axes if not ax.images)
    bottom = min(ax.get_position().y0 for ax in faces)
    assert bar.get_position().y1 <= bottom  # the colour bar right under the faces
    assert faces[0].get_title() == "true Neutral: correct\np 0.18, 58% heat in centre"
    title = fig.get_suptitle()
    assert "no example chosen for Disgust" in title
    assert "p: the predicted class's probability" in title


def test_a_saved_page_wide_figure_is_at_most_seven_inches(tmp_path) -> None:
    from PIL import Image

    clean = {"expression": {"f1_macro": 0.231}}
    block = {"clean": clean, "results": {f"corruption_{i}": {"1": clean} for i in range(7)}}
    fig = plots.plot_corruption_comparison({f"model_{i}": block for i in range(4)})
    png = next(p for p in plots.save_figure(fig, tmp_path, "wide") if p.suffix == ".png")
    with Image.open(png) as image:
        assert image.width <= 7 * 300, image.width  # 300 dpi


def test_the_corruption_comparison_bars_stand_on_the_whole_f1_range() -> None:
    clean = {"expression": {"f1_macro": 0.0152}}
    block = {"clean": clean, "results": {"blur": {"1": clean}, "dark": {"1": clean}}}
    fig = check_figure(plots.plot_corruption_comparison({"a": block}))
    assert fig.axes[0].get_ylim() == pytest.approx((0.0, 1.0))


def test_headline_bars_of_models_near_chance_stay_small() -> None:
    table = pd.DataFrame(
        {
            "model": ["custom_cnn", "resnet50"],
            "expression_f1_macro": [0.015, 0.106],
            "valence_ccc": [0.003, -0.02],
        }
    )
    fig = check_figure(plots.plot_metric_comparison(table))
    expression, valence = fig.axes
    assert expression.get_ylim() == pytest.approx((0.0, 1.0))
    assert valence.get_ylim() == pytest.approx((-1.0, 1.0))
