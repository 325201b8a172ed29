"""Turns the executed report notebook into one self-contained HTML file (outputs only, every
image embedded, no CDN scripts) that can be mailed or opened offline."""

from __future__ import annotations

import os
import re
from pathlib import Path

from helpers.core.errors import DataError


def _external_images(html: str) -> list[str]:
    """<img> sources that are not embedded data: URIs (they would break offline)."""
    sources = re.findall(r"<img\b[^>]*?\bsrc\s*=\s*[\"']([^\"']*)[\"']", html, flags=re.I)
    return [s for s in sources if not s.startswith("data:")]


def export_report(
    executed_notebook: str | os.PathLike, out_html: str | os.PathLike, title: str | None = None
) -> Path:
    """One self-contained HTML file of an executed notebook: outputs only, figures embedded.

    Code and prompts are hidden; PNG outputs are base64 data URIs already and images that
    markdown cells link to are embedded too (embed_images). A DataError lists any image that
    still points outside the file. nbconvert's CDN scripts (MathJax, require.js) are removed,
    so opening the file fetches nothing.
    """
    import nbformat
    from nbconvert import HTMLExporter

    src = Path(executed_notebook)
    if not src.is_file():
        raise DataError(src, "executed notebook not found")
    try:
        nb = nbformat.read(src, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for bad files
        raise DataError(src, f"not a readable notebook ({exc})") from exc
    title = title or src.stem.replace("_", " ")
    nb.metadata["title"] = title
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
    body, _ = exporter.from_notebook_node(
        nb, resources={"metadata": {"name": title, "path": str(src.parent.resolve())}}
    )
    # The report has no maths or widgets: drop the CDN scripts so nothing is fetched offline.
    body = re.sub(r'<script[^>]*\bsrc="https?://[^"]*"[^>]*>\s*</script>', "", body)
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
