"""The report in a real browser (headless Chromium): images load, nothing is cut off at a laptop
window's width, no path of the machine or traceback reaches the reader, a screenshot is kept.
`.ci/run` installs Chromium where it is missing."""

from __future__ import annotations

import base64
import io

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from helpers.reporting.browser import check_report, find_chromium
from helpers.reporting.html import export_report

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed")


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 80, 40)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _report(tmp_path, *outputs) -> object:
    """An executed notebook with these outputs, exported as the runner exports notebook 06."""
    nb = new_notebook(
        cells=[new_markdown_cell("# A report"), new_code_cell("x", outputs=list(outputs))]
    )
    path = tmp_path / "06_report.ipynb"
    nbformat.write(nb, path)
    return export_report(path, tmp_path / "report.html")


def _table(columns: int) -> dict:
    frame = pd.DataFrame({f"expression_metric_number_{i}": [0.123456] * 3 for i in range(columns)})
    return new_output("execute_result", {"text/html": frame.to_html()}, execution_count=1)


def test_a_clean_report_passes_and_leaves_a_screenshot(tmp_path):
    html = _report(tmp_path, new_output("display_data", {"image/png": _png()}), _table(4))
    check = check_report(html, tmp_path / "report.png")
    assert check.images == 1 and check.problems == []
    assert check.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_what_a_reader_should_not_meet_is_named(tmp_path):
    html = _report(
        tmp_path,
        new_output("display_data", {"text/html": '<img src="data:image/png;base64,AAAA">'}),
        _table(30),
        new_output("stream", name="stdout", text="appended to /home/alice/reports/board.csv\n"),
        new_output(
            "execute_result",
            {"text/plain": "Traceback (most recent call last):\n  x"},
            execution_count=2,
        ),
    )
    problems = check_report(html).problems
    assert problems[0].startswith("1 image(s) did not load")
    assert problems[1].startswith("cut off at 1280 px: table:")
    assert problems[2] == "paths of this machine: /home/alice/reports/board.csv"
    assert problems[3] == "1 traceback(s)"
