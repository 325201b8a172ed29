"""What report.html says around its numbers: the data set in the summary, readable row names,
no index column, a caption on the results table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.core.jsonio import write_json
from helpers.evaluation.comparison import by_model
from helpers.reporting import report_text, results
from test_tables_latex import _four


def _run(tmp_path: Path, data: dict) -> Path:
    write_json(tmp_path / "settings.json", {"profile": "smoke", "data": data})
    return tmp_path


def test_the_summary_names_the_demo_set_as_synthetic(tmp_path: Path) -> None:
    run = _run(tmp_path, {"path": "/x/data/demo/affectnet_demo_n64.zip", "demo": True})
    text = report_text.data_sentence(run)
    assert "synthetic demo set" in text and "affectnet_demo_n64.zip" in text
    assert "/x/data" not in text  # no path of the machine


def test_the_summary_names_real_data_by_its_file(tmp_path: Path) -> None:
    run = _run(tmp_path, {"path": "/d/fer2013.csv", "sha256": "ab" * 32, "demo": False})
    text = report_text.data_sentence(run)
    assert "`fer2013.csv`" in text and "abababababab" in text and "synthetic" not in text
    assert "not recorded" in report_text.data_sentence(tmp_path / "nothing")


def test_rows_get_readable_names_and_values() -> None:
    table = pd.DataFrame(
        {
            "model": ["a", "b"],
            "expression_f1_macro_ci_low": [0.5, 0.6],
            "params": [1278450, 2623442],
            "tta": ["none", "flip"],
            "valence_rmse_ci_high": [0.2, 0.3],
            "unknown_key": [1.0, 2.0],
        }
    )
    shown = report_text.labelled(by_model(table, list(table.columns)))
    assert list(shown.index) == [
        "Expression macro F1, 95% CI low",
        "parameters",
        "test-time augmentation",
        "Valence RMSE, 95% CI high",
        "unknown_key",
    ]
    assert shown.loc["parameters"].tolist() == ["1,278,450", "2,623,442"]
    assert shown.loc["test-time augmentation"].tolist() == ["one view", "flip"]


def test_a_statistic_with_no_value_prints_as_n_a_not_none() -> None:
    table = pd.DataFrame(
        {
            "model": ["custom_cnn", "mobilenetv2"],
            "valence_corr": [0.41, None],
            "tta": ["none", None],
        }
    )
    shown = report_text.labelled(by_model(table, list(table.columns)))
    assert shown.loc["Valence Pearson r"].tolist() == ["0.410", "n/a"]
    assert shown.loc["test-time augmentation"].tolist() == ["one view", "n/a"]
    html = shown.to_html()
    assert "None" not in html and "NaN" not in html and "n/a" in html
    assert report_text.MISSING_NOTE.startswith("n/a: ")


def test_the_n_a_note_comes_only_under_a_table_with_an_n_a_cell() -> None:
    whole = pd.DataFrame({"model": ["custom_cnn", "vgg16"], "valence_corr": [0.41, 0.38]})
    assert (
        report_text.missing_note(report_text.labelled(by_model(whole, ["model", "valence_corr"])))
        == ""
    )
    gap = whole.assign(calibration_at_bound=[True, None])
    shown = report_text.labelled(by_model(gap, list(gap.columns)))
    assert report_text.missing_note(shown) == report_text.MISSING_NOTE
    # a value an older notebook 05 did not record is n/a too, and the note says so
    assert "not recorded by the notebook 05 that scored it" in report_text.MISSING_NOTE


def test_notebook_06_shows_the_n_a_note_through_missing_note() -> None:
    import json

    from helpers.core import paths

    cells = json.loads((paths.NOTEBOOKS_DIR / "06_report.ipynb").read_text())["cells"]
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "report_text.MISSING_NOTE" not in code and "report_text.missing_note(" in code


def test_a_table_without_its_index_column() -> None:
    html = report_text.without_index(pd.DataFrame({"task": ["expression"], "p": ["0.001"]})).data
    assert "<th>task</th>" in html and "<th></th>" not in html and ">0<" not in html


def test_the_results_table_has_a_caption() -> None:
    results = pd.DataFrame({"model": ["a"], "valence_ccc": [0.5], "valence_ccc_ci_low": [0.4]})
    caption = report_text.results_caption(results)
    assert caption.startswith("**Table: results.**")
    assert "95% bootstrap intervals" in caption and "best model per task in bold" in caption
    assert "intervals" not in report_text.results_caption(
        results.drop(columns="valence_ccc_ci_low")
    )


def test_the_results_caption_counts_the_test_images_of_notebook_06s_table(tmp_path: Path) -> None:
    caption = report_text.results_caption(results.results_table(_four(tmp_path / "run")))
    assert "on the 391 test images;" in caption


def _support(per_class: dict[str, float]) -> pd.DataFrame:
    """Test faces per class as comparison.per_class_scores(run, "support") gives them."""
    return pd.DataFrame([per_class, per_class], index=["custom_cnn", "vgg16"])


def test_the_per_class_note_names_the_rarest_class_the_test_split_has() -> None:
    # FER-2013: no Contempt in the data, Disgust the rarest of its seven classes
    fer = {"Neutral": 607, "Happy": 894, "Disgust": 55, "Anger": 465}
    note = report_text.rare_class_note(_support(fer))
    assert "never finds Disgust (55 of the 2,021 test faces)" in note
    assert "Contempt" not in note
    ferplus = {**fer, "Contempt": 12.0}
    assert "never finds Contempt (12 of" in report_text.rare_class_note(_support(ferplus))
    # a class scored with no test faces is not the rarest
    assert "Contempt" not in report_text.rare_class_note(_support({**fer, "Contempt": 0.0}))
    assert report_text.rare_class_note(pd.DataFrame()) == ""


def test_notebook_06_names_no_class_of_its_own_in_the_per_class_note() -> None:
    """The note comes from the run's test faces, not from the notebook's text."""
    import nbformat

    notebook = nbformat.read(Path(__file__).parents[1] / "notebooks/06_report.ipynb", 4)
    text = "\n".join(cell.source for cell in notebook.cells)
    assert "never finds Contempt" not in text
    assert "report_text.rare_class_note(" in text


def test_the_deployment_table_sets_batched_beside_batched_and_says_which(tmp_path: Path) -> None:
    from helpers.inference.deploy import deployment_table

    export = {
        "model": "custom_cnn",
        "n": 500,
        "keras": {"accuracy": 0.252, "latency": {"batched_ms": 4.4, "single_ms": 20.8}},
        "tflite_float": {"accuracy_change": 0.0, "latency": {"batched_ms": 8.7, "single_ms": 5.5}},
        "tflite_int8": {
            "accuracy_change": -0.01,
            "latency": {"batched_ms": 7.4, "single_ms": 11.8},
        },
    }
    write_json(tmp_path / "export" / "custom_cnn.json", export)
    shown = report_text.labelled(by_model(deployment_table(tmp_path), ["model", *_LATENCIES]))
    for kind, batched, single in (("float", "8.700", "5.500"), ("int8", "7.400", "11.8")):
        assert shown.loc[f"TFLite {kind}: ms per image, batched", "custom_cnn"] == batched
        assert shown.loc[f"TFLite {kind}: ms per image, one at a time", "custom_cnn"] == single
    assert all(label.endswith(("batched", "one at a time")) for label in shown.index)


_LATENCIES = [
    "keras_ms_batched",
    "keras_ms_single",
    "float_ms_batched",
    "float_ms_single",
    "int8_ms_batched",
    "int8_ms_single",
]


def test_the_n_a_note_gives_each_models_own_reason() -> None:
    table = pd.DataFrame(
        {"model": ["custom_cnn", "mobilenetv2"], "expression_roc_auc_ovr": [0.7, None]}
    )
    shown = report_text.labelled(by_model(table, list(table.columns)))
    flat = {
        "expression": {"labels": ["Neutral", "Happy"], "roc_auc_ovr": None, "constant_proba": True}
    }
    metrics = {"custom_cnn": {"expression": {"labels": ["Neutral", "Happy"], "roc_auc_ovr": 0.7}}}
    note = report_text.missing_note(shown, {**metrics, "mobilenetv2": flat})
    assert note.startswith(report_text.MISSING_NOTE)
    assert "mobilenetv2: expression: the class probabilities are the same" in note
    assert "custom_cnn:" not in note


def test_notebook_06_explains_n_a_under_every_per_model_table() -> None:
    import json

    from helpers.core import paths

    cells = json.loads((paths.NOTEBOOKS_DIR / "06_report.ipynb").read_text())["cells"]
    for cell in cells:
        code = "".join(cell["source"])
        if cell["cell_type"] == "code" and "SECONDARY_COLUMNS" in code:
            assert "report_text.missing_note(" in code


def test_the_va_section_says_why_it_has_no_figure() -> None:
    import numpy as np

    fer = pd.DataFrame({"expression": [0, 1, 2], "expression_pred": [0, 1, 1]})
    assert report_text.va_figures_or_note({"custom_cnn": fer}) == report_text.NO_VA_NOTE
    rng = np.random.default_rng(0)
    va = fer.assign(valence=rng.uniform(-1, 1, 3), valence_pred=rng.uniform(-1, 1, 3))
    shown = report_text.va_figures_or_note({"custom_cnn": fer, "vgg16": va})
    assert isinstance(shown, list) and len(shown) == 1


def test_no_report_heading_stands_over_cells_the_report_leaves_out() -> None:
    import json

    from helpers.core import paths

    cells = json.loads((paths.NOTEBOOKS_DIR / "06_report.ipynb").read_text())["cells"]
    removed = [("remove-cell" in c["metadata"].get("tags", [])) for c in cells]
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown" or removed[i]:
            continue
        text = "".join(cell["source"]).strip()
        if text.startswith("#") and "\n" not in text:  # a heading alone: its code is its content
            after = []
            for j in range(i + 1, len(cells)):
                if cells[j]["cell_type"] == "markdown":
                    break
                after.append(removed[j])
            assert after and not all(after), text


def test_the_learning_curves_caption_describes_the_figure_drawn() -> None:
    one = pd.DataFrame({"loss": [1.2], "val_loss": [1.3]})
    three = pd.DataFrame({"loss": [1.2, 1.0, 0.9], "val_loss": [1.3, 1.1, 1.0]})
    single = report_text.learning_curves_caption({"custom_cnn": one})
    assert "bars" in single and "dashed" not in single and "black line" not in single
    curves = report_text.learning_curves_caption({"custom_cnn": three})
    assert "dashed" in curves and "black line" in curves and "bars" not in curves
    mixed = report_text.learning_curves_caption({"custom_cnn": three, "vgg16": one})
    assert "For custom_cnn:" in mixed and "vgg16 trained one epoch" in mixed
    assert "nothing to plot" in report_text.learning_curves_caption({})


def test_notebook_06_captions_its_learning_curves_from_the_histories() -> None:
    import json

    from helpers.core import paths

    cells = json.loads((paths.NOTEBOOKS_DIR / "06_report.ipynb").read_text())["cells"]
    prose = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "dashed" not in prose and "report_text.learning_curves_caption(" in code


def test_the_gradcam_text_is_that_of_the_runs_own_maps() -> None:
    scratch = {"explain": {"layer": "block4_relu2 5x5"}}
    text = report_text.gradcam_maps_text(
        {"custom_cnn": scratch}, {"custom_cnn": {"pretrained_backbone": False}}
    )
    assert "custom_cnn (trained from scratch): block4_relu2, a 5x5 map" in text
    assert "2x2" not in text and "pretrained" not in text and "cannot localise" not in text
    assert "It has at least 3 cells a side" in text
    both = report_text.gradcam_maps_text(
        {"custom_cnn": scratch, "vgg16": {"explain": {"layer": "block5_conv3 2x2"}}},
        {"custom_cnn": None, "vgg16": {"pretrained_backbone": True}},
    )
    assert "vgg16 (pretrained backbone): block5_conv3, a 2x2 map" in both
    assert "(vgg16) is stretched" in both and "cannot localise" in both
    assert report_text.gradcam_maps_text({"m": {"explain": None}}, {}) == ""


def test_notebook_06_says_nothing_of_a_map_size_the_run_did_not_have() -> None:
    import json

    from helpers.core import paths

    cells = json.loads((paths.NOTEBOOKS_DIR / "06_report.ipynb").read_text())["cells"]
    prose = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    code = "".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "2x2" not in prose and "report_text.gradcam_maps_text(" in code


def test_a_model_with_no_collapsed_head_and_no_new_training_says_so() -> None:
    table = pd.DataFrame(
        {"model": ["custom_cnn", "vgg16"], "collapsed_heads": ["", "expression"], "stale": ["", ""]}
    )
    shown = report_text.labelled(by_model(table, list(table.columns)))
    assert shown.loc["heads that collapsed"].tolist() == ["none", "expression"]
    assert shown.loc["trained again since scored"].tolist() == ["no", "no"]


def test_notebook_06_says_in_the_terminal_that_it_draws_the_figures(tmp_path, monkeypatch) -> None:
    """Its per-model figures take a minute or two on a busy CPU: a line says so as they start,
    before the first of them (the Grad-CAM panels)."""
    import json

    from helpers.core import paths, progress

    lines = tmp_path / "lines"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(lines))
    progress.line(report_text.figures_line(4))
    assert lines.read_text().splitlines() == [
        "drawing the figures of 4 models (Grad-CAM, learning curves, predictions), each saved as "
        "PDF and PNG ..."
    ]
    cells = json.loads((paths.NOTEBOOKS_DIR / "06_report.ipynb").read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    (first,) = [i for i, text in enumerate(code) if "gradcam_panel_or_note" in text]
    assert code[first].startswith("progress.line(report_text.figures_line(len(table)))")
