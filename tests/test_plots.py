"""helpers.reporting.plots: every figure builds and renders under Agg, including on data that lacks
labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from figure_checks import check_figure as _check
from helpers.core.labels import EXPRESSIONS
from helpers.data import eda
from helpers.reporting import plots


def _face_points(size: int) -> np.ndarray:
    """A plausible 68-point layout scaled to the image, right eye (36) on the image left."""
    t = np.linspace(0, np.pi, 17)
    jaw = np.stack([0.5 - 0.4 * np.cos(t), 0.45 + 0.45 * np.sin(t)], axis=1)
    rest = np.random.default_rng(1).uniform(0.25, 0.75, size=(51, 2))
    pts = np.vstack([jaw, rest])
    pts[36], pts[45] = (0.25, 0.4), (0.75, 0.4)
    return (pts * (size - 1)).astype(np.float32)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """20 small images (grey and RGB), 7 classes (Contempt absent), landmarks on every other row."""
    folder: Path = tmp_path_factory.mktemp("plots")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        shape = (32, 32) if i % 3 else (24, 32, 3)
        path = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path)
        rows.append(
            {
                "id": f"r{i:02d}",
                "image": str(path),
                "source": "test",
                "expression": i % 7,
                "valence": rng.uniform(-1, 1),
                "arousal": rng.uniform(-1, 1),
                "landmarks": _face_points(shape[0]) if i % 2 == 0 else None,
                "split": ("train", "val", "test")[i % 3],
            }
        )
    return pd.DataFrame(rows)


def _n_images(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_class_colors_one_per_class():
    assert len(plots.CLASS_COLORS) == len(EXPRESSIONS) == len(set(plots.CLASS_COLORS))
    assert list(plots.CLASS_PALETTE) == list(EXPRESSIONS)


def test_plot_class_distribution_single_and_per_split(records):
    fig = _check(plots.plot_class_distribution(eda.class_distribution(records)), n_axes=1)
    ax = fig.axes[0]
    present = [name for name in EXPRESSIONS if name != "Contempt"]
    assert [t.get_text() for t in ax.get_xticklabels()] == present  # absent Contempt left out
    assert len(ax.patches) == 7
    assert fig.get_suptitle() == "absent from the data: Contempt"  # said once, in words
    fig = _check(plots.plot_class_distribution(eda.class_distribution(records, by_split=True)), 3)
    for ax in fig.axes:  # every split on the same class axis as the balancing figure
        assert [t.get_text() for t in ax.get_xticklabels()] == present
    assert "absent from the data: Contempt" in fig.get_suptitle()


def test_plot_va_scatter_with_and_without_valence(records):
    fig = _check(plots.plot_va_scatter(records), n_axes=4)
    assert fig.axes[1].get_ylabel() == fig.axes[2].get_xlabel() == "faces"  # the marginals
    main = fig.axes[0]
    assert main.get_xlim() == (-1, 1) and main.get_ylim() == (-1, 1)
    assert len(main.collections[0].get_offsets()) == len(records)
    sub = _check(plots.plot_va_scatter(records, max_points=5))
    assert len(sub.axes[0].collections[0].get_offsets()) == 5
    no_va = records.assign(valence=np.nan, arousal=np.nan)
    for frame in (no_va, records.drop(columns=["valence", "arousal"])):
        assert plots.plot_va_scatter(frame) is None  # left out, not an empty figure


def test_plot_sample_grid_rows_are_classes(records):
    fig = _check(plots.plot_sample_grid(records, per_class=2, seed=0), n_axes=7 * 2)
    assert _n_images(fig) == 14  # seven classes with >= 2 images; Contempt has no row
    labels = [fig.axes[2 * k].get_ylabel().split("\n")[0] for k in range(7)]
    assert labels == [name for name in EXPRESSIONS if name != "Contempt"]
    title = plots.figure_title(fig)  # the image's alt text says what the grid shows
    assert title == (
        "Up to 2 seeded example faces per expression class, one row each "
        "(absent from the data: Contempt)"
    )
    grey_cmaps = {
        im.get_cmap().name for ax in fig.axes for im in ax.images if im.get_array().ndim == 2
    }
    assert grey_cmaps == {"gray"}


def test_plot_sample_grid_with_landmarks_and_size(records):
    fig = _check(plots.plot_sample_grid(records, per_class=3, landmarks=True, size=(6, 9)))
    assert tuple(fig.get_size_inches()) == (6, 9)
    assert sum(len(ax.lines) for ax in fig.axes) > 0
    no_lnd = records.assign(landmarks=None)
    fig = _check(plots.plot_sample_grid(no_lnd, per_class=3, landmarks=True))
    assert sum(len(ax.lines) for ax in fig.axes) == 0


def test_plot_landmarks_draws_groups_and_highlights(records):
    fig = _check(plots.plot_landmarks(records, n=4, seed=0))
    assert _n_images(fig) == 4
    for ax in fig.axes:
        if ax.images:
            assert len(ax.lines) == 9  # one line per landmark group
            assert {t.get_text() for t in ax.texts} == {"36", "45"}
    fig = _check(plots.plot_landmarks(records, n=50))
    assert _n_images(fig) == 10  # only rows that have landmarks
    for frame in (records.assign(landmarks=None), records.drop(columns="landmarks")):
        note = plots.plot_landmarks(frame)  # a sentence, not an image of one
        assert isinstance(note, plots.Note) and "no landmarks" in note
        assert note._repr_markdown_() == repr(note) == str(note)


def test_draw_landmarks_closes_closed_groups_and_accepts_flat_or_nested():
    pts = _face_points(64)
    fig = Figure()
    ax = fig.subplots()
    plots.draw_landmarks(ax, pts, color="red")
    by_len = sorted(len(line.get_xdata()) for line in ax.lines)
    # jaw 17 open; eyes 6+1, outer lip 12+1, inner lip 8+1 closed; brows 5, nose 4 and 5.
    assert by_len == sorted([17, 5, 5, 4, 5, 7, 7, 13, 9])
    assert all(line.get_color() == "red" for line in ax.lines)
    nested = np.empty(68, dtype=object)  # what pandas makes of a parquet list<list<float>>
    nested[:] = [np.asarray(p) for p in pts]
    for value in (pts.reshape(-1), pts.tolist(), nested):
        np.testing.assert_array_equal(plots.as_points(value), pts)
    assert plots.as_points(None) is None and plots.as_points(np.nan) is None
    with pytest.raises(ValueError, match="68"):
        plots.as_points(np.zeros((5, 2)))


def test_plot_image_stats(records):
    stats = eda.image_stats(records, sample=None, progress=False)
    fig = _check(plots.plot_image_stats(stats), n_axes=3)
    sizes = [t.get_text() for t in fig.axes[2].get_yticklabels()]
    assert set(sizes) == {"32×32 gray", "32×24 RGB"}
    _check(plots.plot_image_stats(stats.iloc[:0]), n_axes=1)


def test_plot_duplicates(records):
    pairs = pd.DataFrame(
        {
            "id_a": ["r00", "r01", "r02"],
            "id_b": ["r03", "r04", "r05"],
            "distance": [0, 2, 3],
            "kind": ["exact", "near", "near"],
        }
    )
    fig = _check(plots.plot_duplicates(records, pairs, n=2), n_axes=4)
    assert _n_images(fig) == 4
    assert fig.axes[0].get_title() == "r00 [train]\nNeutral"  # each face with its label
    same = pd.DataFrame(  # r00 and r07 are both Neutral; r01 (Happy) and r04 (Fear) are not
        {
            "id_a": ["r00", "r01"],
            "id_b": ["r07", "r04"],
            "distance": [0, 2],
            "kind": ["exact", "near"],
        }
    )
    fig = _check(plots.plot_duplicates(records, same, n=1), n_axes=2)
    assert fig.axes[0].get_title() == "r01 [val]\nHappy"  # labelled differently: shown first
    assert fig.get_suptitle().startswith("1 of 2 duplicate pairs: those labelled differently first")
    assert plots.plot_duplicates(records, pairs.iloc[:0]) is None  # nothing to draw, no figure
    with pytest.raises(ValueError, match="missing"):
        plots.plot_duplicates(records, pairs.assign(id_b="nope"))


def test_sample_figures_skip_an_image_that_cannot_be_decoded(records, tmp_path):
    # One truncated file among the samples: the figures draw a stand-in and say so, not raise.
    cut = tmp_path / "cut.jpg"
    noisy = np.random.default_rng(3).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    bad = records.copy()
    bad.loc[0, "image"] = str(cut)  # row 0 is Neutral's first image and has landmarks
    fig = _check(plots.plot_sample_grid(bad, per_class=6, seed=0))
    assert _n_images(fig) == 19  # Neutral's other two images drawn, the cut one skipped
    assert "1 image(s) could not be decoded" in fig.get_suptitle()
    assert "cut.jpg" in fig.get_suptitle()
    fig = _check(plots.plot_landmarks(bad, n=50))
    assert _n_images(fig) == 9
    assert "could not be decoded" in fig.get_suptitle()
    skips = 0
    for seed in range(6):  # the next image with landmarks stands in for a skipped one
        fig = _check(plots.plot_landmarks(bad, n=2, seed=seed))
        assert _n_images(fig) == 2
        skips += "could not be decoded" in fig.get_suptitle()
    assert skips


def test_plot_image_stats_says_a_single_size_in_its_title(records):
    one = eda.image_stats(records.iloc[1:3], sample=None)
    fig = _check(plots.plot_image_stats(one), n_axes=2)  # no panel of one full-width bar
    assert fig.get_suptitle().endswith("images, all 32×32 gray")


def test_plot_balance_leaves_out_an_unchanged_split_and_names_both_bar_parts():
    names = ["Neutral", "Happy"]
    same = pd.DataFrame({"before": [5, 76], "after": [5, 76]}, index=names)
    assert isinstance(plots.plot_balance(same), plots.Note)
    grown = pd.DataFrame({"before": [5, 76], "after": [60, 76], "generated": [55, 0]}, index=names)
    fig = _check(plots.plot_balance(grown))
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["originals (hatched)", "augmented copies (solid)"]
    for ax in fig.axes:  # the count over the tallest bar stays inside the frame
        assert ax.get_ylim()[1] > 76 * 1.1


def test_augmented_copies_are_numbered_and_their_eye_corners_big_enough_to_check(records):
    source = records.iloc[0]  # has landmarks
    manifest = pd.DataFrame(
        [
            {
                "source_id": source["id"],
                "image": source["image"],
                "landmarks": source["landmarks"],
                "transform_seed": seed,
            }
            for seed in (773786671, 12)
        ]
    )
    fig = _check(plots.plot_augmented_examples(records, manifest, n=1, copies=2))
    assert [ax.get_title() for ax in fig.axes[1:]] == ["copy 1", "copy 2"]
    corners = [c for ax in fig.axes for c in ax.collections if c.get_sizes()[0] >= 40]
    assert len(corners) == 2 * 3  # points 36 and 45 on the source and both copies
