"""The tables a run writes for a paper (results.tex, seeds.tex, folds.tex) read as printed: no
box scaled to the line, no -0.000, `--` kept two hyphens, no Markdown in a caption, a label of
their own per run; and, where pdflatex is installed, they compile at full size."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from helpers.evaluation.scoring import write_metrics
from helpers.reporting import folds, latex, results, seeds

MODELS = ("custom_cnn", "mobilenetv2", "resnet50", "vgg16")


def _metrics(model: str, shift: float, n: int = 391) -> dict[str, Any]:
    """A metrics JSON of five headline metrics with intervals, as notebook 05 writes it."""

    def scored(key: str, value: float) -> dict[str, Any]:
        return {key: value, f"{key}_ci": [value - 0.02, value + 0.02]}

    return {
        "model": model,
        "n": n,
        "expression": {**scored("accuracy", 0.9 - shift), **scored("f1_macro", 0.88 - shift)},
        "valence": scored("ccc", 0.87 - shift),
        "arousal": scored("ccc", 0.85 - shift),
        "landmarks": scored("nme", 0.06 + shift),
    }


def _run(folder: Path, metrics: list[dict[str, Any]], demo: bool = True) -> Path:
    """A run folder with its manifest and one metrics JSON per model."""
    for scores in metrics:
        write_metrics(scores, folder / "metrics" / f"{scores['model']}.json")
    manifest = {
        "profile": {"name": "cpu"},
        "seed": 0,
        "data": {"path": "/data/faces.zip", "sha256": "abc", "demo": demo},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _four(folder: Path) -> Path:
    """A run of the main job's four models."""
    return _run(folder, [_metrics(m, i / 50) for i, m in enumerate(MODELS)])


def _seed_runs(tmp_path: Path) -> list[Path]:
    """Two seeds of one recipe, the CNN's valence scored in one of them only."""
    runs = []
    for seed in (0, 1):
        scores = [_metrics(m, i / 50 + seed / 100) for i, m in enumerate(MODELS)]
        if seed:
            scores[0]["valence"] = None
        runs.append(_run(tmp_path / "series" / f"seed-{seed}", scores))
        manifest = json.loads((runs[-1] / "manifest.json").read_text())
        manifest.update(seed=seed, profile={"name": "smoke"})
        (runs[-1] / "manifest.json").write_text(json.dumps(manifest))
    return runs


def _folds_table() -> pd.DataFrame:
    """folds_table's columns for two models of a 3-fold cross-validation of 314 faces, the
    second's expression head learned nothing in two folds."""
    rows = []
    for index, model in enumerate(("custom_cnn", "mobilenetv2")):
        row: dict[str, Any] = {"model": model, "profile": "smoke", "runs": 3}
        row.update(tta="none" if index == 0 else "flip in 2, none in 1", folds="1, 2, 3")
        for task, metric, _ in results.COLUMNS:
            column = f"{task}_{metric}"
            row.update({f"{column}_n": 3, f"{column}_mean": 0.8, f"{column}_sd": 0.05})
            row.update({f"{column}_pooled": 0.81, f"{column}_pooled_ci_low": 0.78})
            row[f"{column}_pooled_ci_high"] = 0.84
            row[f"{task}_collapsed"] = 2 if index and task == "expression" else 0
        row["faces"] = 314
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(k=3, profile="smoke", seed=0, stratified=True, people=False, demo=True)
    return table


def _columns(tex: str) -> int:
    """The number of columns of the tabular in a LaTeX table."""
    spec = re.search(r"\\begin\{tabular\}\{([^}]*)\}", tex)
    assert spec is not None, tex
    return len(re.sub(r"[^lrcp]", "", spec.group(1)))


def test_a_value_that_rounds_to_zero_is_written_0_000_never_minus(tmp_path: Path) -> None:
    scores = _metrics("mobilenetv2", 0)
    scores["valence"] = {"ccc": -6.695e-09, "ccc_ci": [-1.98e-07, 1e-09]}
    run = _run(tmp_path / "run", [_metrics("custom_cnn", 0), scores])
    table = results.results_table(run)
    tex, markdown = results.to_latex(table), results.to_markdown(table)
    assert "-0.000" not in tex and "-0.000" not in markdown
    assert "| 0.000 [0.000, 0.000] |" in markdown
    assert r"& 0.000 &" in tex and r"{\footnotesize [0.000, 0.000]}" in tex
    assert latex.number(-0.0123) == "$-$0.012" and latex.number(-4e-9) == "0.000"


def test_no_table_is_scaled_to_the_line_and_each_keeps_a_page_of_columns(
    tmp_path: Path,
) -> None:
    tables = {
        "results": results.to_latex(results.results_table(_four(tmp_path / "run"))),
        "seeds": seeds.to_latex(seeds.seeds_table(_seed_runs(tmp_path))),
        "folds": folds.to_latex(_folds_table()),
    }
    for name, tex in tables.items():
        assert r"\resizebox" not in tex and r"\scalebox" not in tex, name
        assert "graphicx" not in tex, name
        assert _columns(tex) <= 8, name  # model, a count or two, five metrics
        sizes = re.findall(r"\\(tiny|scriptsize|footnotesize|small)\b", tex)
        assert set(sizes) <= {"small", "footnotesize"}, name
    assert r"{\footnotesize [0.860, 0.900]}" in tables["results"]  # the interval, a row below


def test_folds_put_the_pooled_figure_and_the_spread_on_rows_of_their_own() -> None:
    tex = folds.to_latex(_folds_table())
    assert r"\begin{tabular}{lrlrrrrr}" in tex  # text left, the faces and metrics right
    rows = [line for line in tex.splitlines() if line.endswith((r"\\", r"\\\addlinespace"))]
    pooled, interval, spread = (row.split(" & ") for row in rows[2:5])
    assert pooled[:4] == ["custom\\_cnn", "314", "one view", "0.810"]
    assert interval[:4] == ["", "", "", r"{\footnotesize [0.780, 0.840]}"]
    assert spread[:4] == [r"\quad folds", "", "", r"{\footnotesize 0.800 $\pm$ 0.050}"]
    assert (
        "mobilenetv2 & 314 & flip in 2, & 0.810$^{\\mathrm{a}}$ & 0.810$^{\\mathrm{a}}$ & 0.810 &"
        in tex
    )
    assert " &  & one view in 1 & {\\footnotesize [0.780, 0.840]}" in tex
    assert "learned nothing" not in tex.split(r"\end{tabular}")[0]  # a mark, the note beneath
    assert r"$^{\mathrm{a}}$ the head learned nothing in 2 of 3 folds." in tex


def test_a_command_in_typewriter_type_keeps_its_two_hyphens() -> None:
    assert latex.texttt("./run_all.sh --run-dir a_b") == r"\texttt{./run\_all.sh -{}-run-dir a\_b}"
    assert latex.latex_escape("--set k=v ---") == "-{}-set k=v -{}-{}-"
    assert latex.inline("the `--seeds` option") == r"the \texttt{-{}-seeds} option"


def test_captions_name_the_profile_in_typewriter_type_not_markdown(tmp_path: Path) -> None:
    for tex in (
        seeds.to_latex(seeds.seeds_table(_seed_runs(tmp_path))),
        folds.to_latex(_folds_table()),
    ):
        assert r"the \texttt{smoke} profile" in tex
        assert "`" not in tex


def test_the_results_caption_gives_the_test_images_data_and_nme_unit_and_a_label_per_run(
    tmp_path: Path,
) -> None:
    first, second = _four(tmp_path / "20261207-101500"), _four(tmp_path / "s28b run")
    csv_path, tex_path = results.write_results(first)
    tex = tex_path.read_text()
    assert r"\caption{391 test images of the synthetic demo set; 95\% bootstrap" in tex
    assert "NME: mean landmark error as a fraction of the distance between the outer eye" in tex
    assert r"\label{tab:results-20261207-101500}" in tex
    assert r"\label{tab:results-s28b-run}" in results.to_latex(results.results_table(second))
    table = pd.read_csv(csv_path)
    assert table["n_test"].tolist() == [391] * 4 and table["n_test"].dtype.kind == "i"
    assert list(table.columns[:4]) == ["model", "parameters", "tta", "expression_accuracy"]
    assert table.columns[-1] == "n_test"  # added last: the older columns keep their places
    assert table["parameters"].isna().all() and "expression_f1_macro_ci_low" in table
    named = _run(tmp_path / "own", [_metrics("custom_cnn", 0, n=52)], demo=False)
    assert r"\caption{52 test images of \texttt{faces.zip};" in results.to_latex(
        results.results_table(named)
    )
    assert r"\caption{FER-2013, PublicTest. 52 test images of \texttt{faces.zip}" in (
        results.to_latex(results.results_table(named), caption="FER-2013, PublicTest.")
    )


PREAMBLE = (
    r"\documentclass[{options}]{article}\usepackage[T1]{fontenc}\usepackage{booktabs}"
    "\n\\begin{document}\n"
)


def _pdflatex(folder: Path, body: str, options: str = "") -> str:
    """pdflatex's log of a document of body: it compiled, with no overfull box."""
    (folder / "doc.tex").write_text(
        PREAMBLE.replace("{options}", options) + body + "\n\\end{document}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    log = (folder / "doc.log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    return log


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_the_tables_compile_and_fit_a_two_column_page_at_full_size(tmp_path: Path) -> None:
    files = {
        "results.tex": results.to_latex(results.results_table(_four(tmp_path / "run"))),
        "seeds.tex": seeds.to_latex(seeds.seeds_table(_seed_runs(tmp_path))),
        "folds.tex": folds.to_latex(_folds_table()),
    }
    for name, tex in files.items():
        (tmp_path / name).write_text(tex)
    log = _pdflatex(tmp_path, "\n".join(r"\input{" + n + "}" for n in files), "twocolumn")
    assert "Overfull" not in log and "multiply defined" not in log
    assert "Overfull" not in _pdflatex(tmp_path, r"\input{seeds.tex}")  # a one-column page
