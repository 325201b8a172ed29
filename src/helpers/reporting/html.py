"""Turns the executed report notebook into one self-contained HTML file (outputs only, every
image embedded, no CDN scripts) that can be mailed or opened offline."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from helpers.core.errors import DataError

# A cell tagged so runs in the notebook (its output a check for the reader of the notebook,
# such as which files were written) but is left out of report.html.
HIDDEN_TAG = "remove-cell"
# A table cell holding an interval, "0.087 [0.086, 0.089]" or "0.087 (0.086-0.089)": kept on one
# line, so a narrow window does not break an interval between its two ends.
# A table wider than the window (four models' columns at 375 px) scrolls inside its own box.
SCROLL_CLASS = "table-scroll"
SCROLL_STYLE = "overflow-x: auto; max-width: 100%"
_INTERVAL = re.compile(r"\d\s*[\[(]\s*-?\d[^\])]*[\])]")


def _external_images(html: str) -> list[str]:
    """<img> sources that are not embedded data: URIs (they would break offline)."""
    sources = re.findall(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']*)[\"']", html, flags=re.I)
    return [s for s in sources if not s.startswith("data:")]


def _image_alts(nb: Any) -> dict[str, str]:
    """Each figure's alt text (its title, which the notebook's display of it records in the
    output's metadata), by the image's base64 data."""
    alts = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            data = output.get("data", {}).get("image/png")
            alt = output.get("metadata", {}).get("image/png", {}).get("alt")
            if isinstance(data, str) and alt:
                alts["".join(data.split())] = str(alt)
    return alts


def _with_first_heading(nb: Any, title: str) -> None:
    """The report's first heading is its title, not the notebook's own."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.split("\n")
            if lines and lines[0].startswith("# "):
                cell.source = "\n".join([f"# {title}", *lines[1:]])
            return


def finish_html(body: str, alts: dict[str, str]) -> str:
    """The exported page with each figure's alt text in place of nbconvert's "No description
    has been provided for this image", interval cells kept on one line, and each table in a
    box that scrolls sideways where the window is narrower than the table."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(body, features="html.parser")
    for img in soup.find_all("img"):
        src = str(img.get("src", ""))
        data = "".join(src.partition("base64,")[2].split())
        if data in alts:
            img["alt"] = alts[data]
    for cell in soup.find_all("td"):
        if _INTERVAL.search(cell.get_text()):
            style = str(cell.get("style", "")).rstrip("; ")
            cell["style"] = (style + "; " if style else "") + "white-space: nowrap"
    for table in soup.find_all("table"):  # a wide table scrolls sideways on a phone, not cut
        parent = table.parent
        if parent is not None and parent.get("class") == [SCROLL_CLASS]:
            continue
        table.wrap(soup.new_tag("div", attrs={"class": SCROLL_CLASS, "style": SCROLL_STYLE}))
    return str(soup)


def finish_export(body: str, nb: Any) -> str:
    """finish_html with the alt texts the notebook's outputs record: the step every HTML copy
    of a notebook ends with (report.html and the run's html/ copies), so they read alike."""
    return finish_html(body, _image_alts(nb))


def export_report(
    executed_notebook: str | os.PathLike, out_html: str | os.PathLike, title: str | None = None
) -> Path:
    """One self-contained HTML file of an executed notebook: outputs only, figures embedded.

    Code and prompts are hidden, and cells tagged HIDDEN_TAG left out; the first heading is
    the title; each figure's alt text is its title (finish_html). PNG outputs are base64 data
    URIs already and images that markdown cells link to are embedded too (embed_images). A
    DataError lists any image that still points outside the file. nbconvert's CDN scripts
    (MathJax, require.js) are removed, so opening the file fetches nothing.
    """
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    src = Path(executed_notebook)
    if not src.is_file():
        raise DataError(src, "executed notebook not found")
    try:
        nb = nbformat.read(src, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for bad files
        raise DataError(src, f"not a readable notebook ({exc})") from exc
    title = title or src.stem.replace("_", " ")
    nb.metadata["title"] = title
    _with_first_heading(nb, title)
    for cell in nb.cells:  # library chatter on stderr (TensorFlow's logs) is not the report
        if cell.cell_type == "code":
            cell.outputs = [
                o
                for o in cell.outputs
                if not (o.output_type == "stream" and o.get("name") == "stderr")
            ]
    exporter = HTMLExporter(
        template_name="lab",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={HIDDEN_TAG}, enabled=True), enabled=True
    )
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": title, "path": str(src.parent.resolve())}}
    )
    # The report has no maths or widgets: drop the CDN scripts so nothing is fetched offline.
    body = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", body)
    body = finish_export(body, nb)
    external = _external_images(body)
    if external:
        raise DataError(
            src,
            f"report would link {len(external)} image(s) outside the file, "
            f"e.g. {external[:3]}; embed them in the notebook instead",
        )
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(body, encoding="utf-8")
    return out
