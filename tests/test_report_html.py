"""report.html as a reader meets it: each figure's title as its alt text, the notebook's checks
left out, intervals kept on one line, the run named in the first heading."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat
import pandas as pd
from bs4 import BeautifulSoup
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from helpers.reporting import html as report_html
from helpers.reporting import plots


def _png(color: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _figure_output() -> object:
    """A figure displayed as notebook 06 displays one (plots' Jupyter formatter)."""
    png, metadata = plots._shown(plots.plot_metric_comparison(pd.DataFrame({"model": ["a"]})))
    return new_output(
        "display_data",
        {"image/png": base64.b64encode(png).decode()},
        metadata={"image/png": metadata},
    )


def _export(tmp_path: Path, cells: list, title: str = "Report: s28b") -> BeautifulSoup:
    path = tmp_path / "06_report.ipynb"
    nbformat.write(new_notebook(cells=cells), path)
    out = report_html.export_report(path, tmp_path / "report.html", title=title)
    return BeautifulSoup(out.read_text(encoding="utf-8"), "html.parser")


def test_each_figure_has_its_title_as_alt_text(tmp_path: Path) -> None:
    plain = new_output("display_data", {"image/png": _png((1, 2, 3))})
    soup = _export(tmp_path, [new_code_cell("x", outputs=[_figure_output(), plain])])
    alts = [img["alt"] for img in soup.find_all("img")]
    assert alts[0] == "No model metrics to compare."  # the figure's own text
    assert alts[1] == "No description has been provided for this image"  # none recorded


def test_the_runs_html_copies_get_the_alt_text_of_the_report(tmp_path: Path) -> None:
    from helpers.run import runner

    path = tmp_path / "notebooks" / "05_evaluate.ipynb"
    path.parent.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("x", outputs=[_figure_output()])]), path)
    copy = runner.export_html(path, tmp_path / "html").read_text(encoding="utf-8")
    alts = [img["alt"] for img in BeautifulSoup(copy, "html.parser").find_all("img")]
    assert alts == ["No model metrics to compare."]


def test_cells_tagged_hidden_run_but_stay_out_of_the_report(tmp_path: Path) -> None:
    debug = new_code_cell(
        "print(x)",
        outputs=[new_output("stream", name="stdout", text="works cited: 20\n")],
        metadata={"tags": [report_html.HIDDEN_TAG]},
    )
    kept = new_code_cell(
        "print(y)", outputs=[new_output("stream", name="stdout", text="4 models compared\n")]
    )
    soup = _export(tmp_path, [new_markdown_cell("# 06 · Report: every model"), debug, kept])
    text = soup.get_text()
    assert "works cited" not in text and "4 models compared" in text
    assert soup.find("h1").get_text().strip().startswith("Report: s28b")
    assert "06 · Report" not in text
    assert soup.title.get_text() == "Report: s28b"


def test_interval_cells_do_not_wrap(tmp_path: Path) -> None:
    frame = pd.DataFrame({"model": ["a"], "CCC": ["0.087 [0.086, 0.089]"], "params": ["1,278"]})
    table = new_output("execute_result", {"text/html": frame.to_html()}, execution_count=1)
    soup = _export(tmp_path, [new_code_cell("t", outputs=[table])])
    cells = {td.get_text(): td.get("style", "") for td in soup.find_all("td")}
    assert cells["0.087 [0.086, 0.089]"] == "white-space: nowrap"
    assert cells["1,278"] == "" and cells["a"] == ""


def test_a_table_scrolls_sideways_in_its_own_box_on_a_narrow_window() -> None:
    from bs4 import BeautifulSoup

    from helpers.reporting.html import SCROLL_CLASS, finish_html

    page = finish_html("<p>x</p><table><tr><td>0.1 [0.0, 0.2]</td></tr></table>", {})
    table = BeautifulSoup(page, features="html.parser").find("table")
    assert table.parent.name == "div" and table.parent["class"] == [SCROLL_CLASS]
    assert "overflow-x: auto" in table.parent["style"]
    assert finish_html(page, {}).count(SCROLL_CLASS) == 1  # finished twice, wrapped once
