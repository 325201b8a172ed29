"""The tables a run writes for a paper (results.tex) read as printed: no
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
from helpers.reporting import latex, results

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
    }
    for name, tex in tables.items():
        assert r"\resizebox" not in tex and r"\scalebox" not in tex, name
        assert "graphicx" not in tex, name
        assert _columns(tex) <= 8, name  # model, a count or two, five metrics
        sizes = re.findall(r"\\(tiny|scriptsize|footnotesize|small)\b", tex)
        assert set(sizes) <= {"small", "footnotesize"}, name
    assert r"{\footnotesize [0.860, 0.900]}" in tables["results"]  # the interval, a row below


def test_a_command_in_typewriter_type_keeps_its_two_hyphens() -> None:
    assert latex.texttt("./run_all.sh --run-dir a_b") == r"\texttt{./run\_all.sh -{}-run-dir a\_b}"
    assert latex.latex_escape("--set k=v ---") == "-{}-set k=v -{}-{}-"
    assert latex.inline("the `--seeds` option") == r"the \texttt{-{}-seeds} option"


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
    }
    for name, tex in files.items():
        (tmp_path / name).write_text(tex)
    log = _pdflatex(tmp_path, "\n".join(r"\input{" + n + "}" for n in files), "twocolumn")
    assert "Overfull" not in log and "multiply defined" not in log
