"""The report's figures as files a paper can take, their alt text, and their sizes: every figure
notebook 06 shows is also written as a vector PDF and a 300-dpi PNG under a stable name."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from figure_checks import check_figure
from helpers.reporting import plots


@pytest.fixture(autouse=True)
def _no_kept_figures():
    """Each test starts and ends with no folder to keep figures in."""
    plots.keep_figures(None)
    yield
    plots.keep_figures(None)


def _table(tasks: int = 4) -> pd.DataFrame:
    columns = ["expression_f1_macro", "valence_ccc", "arousal_ccc", "landmarks_nme"][:tasks]
    table = pd.DataFrame({"model": ["custom_cnn", "mobilenetv2", "resnet50", "vgg16"]})
    for column in columns:
        table[column] = [0.9, 0.8, 0.7, 0.6]
        table[f"{column}_ci_low"] = table[column] - 0.05
        table[f"{column}_ci_high"] = table[column] + 0.05
    return table


def test_a_shown_figure_is_kept_as_pdf_and_300_dpi_png(tmp_path: Path) -> None:
    folder = plots.keep_figures(tmp_path / "figures")
    fig = plots.plot_metric_comparison(_table())
    png, metadata = plots._shown(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert metadata == {"alt": "Headline metric per model, 95% bootstrap CI"}
    assert sorted(p.name for p in folder.glob("[!.]*")) == [
        "metric_comparison.pdf",
        "metric_comparison.png",
    ]
    assert (folder / "metric_comparison.pdf").read_bytes()[:5] == b"%PDF-"
    with Image.open(folder / "metric_comparison.png") as image:
        assert round(image.info["dpi"][0]) == 300
    plots._shown(fig)  # shown again: still one file pair
    assert len(list(folder.glob("[!.]*"))) == 2


def test_a_report_made_again_clears_the_figures_it_wrote_before_and_only_those(
    tmp_path: Path,
) -> None:
    history = pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    folder = plots.keep_figures(tmp_path / "figures")
    (folder / "my_sketch.png").write_bytes(b"mine")  # a user's file stays
    for model in ("vgg16", "resnet50"):
        plots._shown(plots.plot_learning_curves(history, title=model))
    plots.keep_figures(folder)  # the report made again, vgg16 no longer in the run
    plots._shown(plots.plot_learning_curves(history, title="resnet50"))
    assert sorted(p.name for p in folder.glob("[!.]*")) == [
        "learning_curves_resnet50.pdf",
        "learning_curves_resnet50.png",
        "my_sketch.png",
    ]
    plots.keep_figures(folder)  # nothing shown this time: none of the report's files stays
    assert sorted(p.name for p in folder.glob("[!.]*")) == ["my_sketch.png"]


def test_two_figures_of_one_name_get_two_files_and_none_without_a_folder(tmp_path: Path) -> None:
    history = pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})
    plots._shown(plots.plot_learning_curves(history, title="vgg16"))  # no folder: no file
    folder = plots.keep_figures(tmp_path)
    for _ in range(2):
        plots._shown(plots.plot_learning_curves(history, title="vgg16"))
    assert sorted(p.stem for p in folder.glob("*.pdf")) == [
        "learning_curves_vgg16",
        "learning_curves_vgg16_2",
    ]
    figure = plots.plot_learning_curves(history, title="vgg16")
    assert plots.figure_title(figure) == "vgg16: learning curves"  # its alt text names it
    assert figure.get_size_inches()[0] <= plots.PAGE_INCHES


def test_figure_names_and_titles_fall_back_to_the_panels() -> None:
    fig = Figure()
    ax = fig.subplots()
    ax.set_title("Valence: CCC 0.9")
    assert plots.figure_title(fig) == "Valence: CCC 0.9"
    assert plots.figure_name(fig) == "valence_ccc_0_9"
    assert plots.figure_title(Figure()) == "Figure" and plots.figure_name(Figure()) == "figure"


def test_save_figure_writes_both_formats(tmp_path: Path) -> None:
    written = plots.save_figure(plots.plot_metric_comparison(_table(2)), tmp_path, "headline")
    assert [p.name for p in written] == ["headline.pdf", "headline.png"]


def test_the_headline_comparison_fits_a_page_with_a_panel_per_task() -> None:
    fig = check_figure(plots.plot_metric_comparison(_table()), 4)
    width, height = fig.get_size_inches()
    assert width <= plots.PAGE_INCHES and height < 9
    assert fig.get_label() == "metric_comparison"
    labels = {t.get_text(): t.get_color() for ax in fig.axes for t in ax.texts}
    assert labels["0.800"] == "black"  # on the orange bar: black, not white


@pytest.mark.parametrize("models", [2, 4, 7])
def test_report_grids_are_no_wider_than_a_page(models: int) -> None:
    cm = np.eye(8, dtype=np.int64) * 5 + 1
    names = [f"m{i}" for i in range(models)]
    grid = plots.plot_confusion_grid({n: (cm, [str(k) for k in range(8)]) for n in names})
    assert grid.get_size_inches()[0] <= plots.PAGE_INCHES
    clean = {"expression": {"f1_macro": 0.8}}
    block = {"clean": clean, "results": {f"c{i}": {"1": clean} for i in range(7)}}
    bars = plots.plot_corruption_comparison(dict.fromkeys(names, block))
    assert bars.get_size_inches()[0] <= plots.PAGE_INCHES


def test_the_map_text_names_layer_and_size_and_warns_when_coarse() -> None:
    assert plots.map_text("block4_relu2 6x6") == "block4_relu2, 6x6 map"
    assert plots.map_text("block5_conv3 2x2") == (
        "block5_conv3, 2x2 map, too coarse to localise within the face"
    )
    assert plots.map_text(None) == "" and plots.map_text("out_relu") == "out_relu"


def test_the_gradcam_panel_names_its_map_in_a_uniform_colour_map(tmp_path: Path) -> None:
    image = tmp_path / "face.png"
    Image.new("RGB", (24, 24), (120, 90, 60)).save(image)
    explained = pd.DataFrame(
        {
            "image": [str(image)] * 3,
            "heatmap": [np.full((2, 2), 0.5, np.float32)] * 3,
            "role": ["correct", "correct", "mistake"],
            "confidence": [0.9, 0.8, 0.7],
            "expression": [1, 2, 3],
            "expression_pred": [1, 2, 4],
            "on_face": [0.3, 0.4, 0.5],
        }
    )
    explained.attrs = {"layer": "block5_conv3 2x2"}
    fig = check_figure(plots.plot_gradcam_panel(explained, title="vgg16"))
    assert fig.get_suptitle().startswith(
        "vgg16: Grad-CAM of block5_conv3, 2x2 map, too coarse to localise"
    )
    assert fig.get_label() == "gradcam_vgg16"
    assert plots.HEAT_CMAP in {"magma", "inferno", "viridis", "cividis", "plasma"}


def _overlaps(boxes: list) -> list:
    """Pairs of drawn boxes that touch or overlap (indices)."""
    return [
        (i, j)
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes)
        if i < j and a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1
    ]


def test_an_8_class_confusion_grid_of_4_models_reads_at_page_width() -> None:
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 40, size=(8, 8))
    cm[:, 3] += 300  # most faces predicted as one class, several rows with zero cells
    cm[2, [0, 1, 4]] = 0
    names = ["custom_cnn", "mobilenetv2", "resnet50", "vgg16"]
    labels = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
    fig = plots.plot_confusion_grid(dict.fromkeys(names, (cm, labels)))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        texts = [t for t in ax.texts if t.get_text()]
        shown = [t.get_text() for t in texts]
        assert all(len(s) <= 3 for s in shown), shown  # "0.00" fills an 8x8 cell edge to edge
        assert "0" not in shown and "0.00" not in shown  # a zero cell is left blank
        boxes = [t.get_window_extent(renderer) for t in texts]
        assert not _overlaps(boxes)
        ticks = [t.get_window_extent(renderer) for t in ax.get_yticklabels() if t.get_text()]
        touching = [a for a in boxes for b in ticks if a.x0 < b.x1 + 2 and b.y0 < a.y1 < b.y1]
        assert not touching  # a first-column number clear of its row's label
