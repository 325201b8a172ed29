"""The written results: benchmarks.json (every number) and benchmarks.md (tables with ratios)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from benchmarks.common import gb
from helpers.core.jsonio import json_ready

SUMMARY_COLUMNS = ("benchmark", "measure", "project", "baseline", "ratio", "target", "met")


def cell(value: Any) -> str:
    """One table cell: numbers rounded for reading, text escaped for markdown."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        magnitude = abs(value)
        if magnitude >= 100:
            return f"{value:,.0f}"
        if magnitude >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}" if magnitude >= 0.01 or value == 0 else f"{value:.2g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _amount(value: float | None, unit: str) -> str:
    """A comparison's figure with its unit; bytes as GB."""
    if value is None:
        return ""
    if unit == "bytes":
        return f"{cell(gb(value))} GB"
    return f"{cell(value)} {unit}"


def _ratio(value: float | None) -> str:
    """Ratio as '5.2x' (project better above 1)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def markdown_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def summary_rows(report: dict[str, Any]) -> list[list[Any]]:
    """Every side-by-side comparison of every benchmark, one row each; skips say why."""
    rows = []
    for name, bench in report["benchmarks"].items():
        if bench.get("status") != "ok":
            rows.append(
                [name, f"{bench.get('status')}: {bench.get('reason') or ''}", "", "", "", "", ""]
            )
            continue
        for c in bench.get("comparisons", []):
            met = "" if c.get("met") is None else ("yes" if c["met"] else "NO")
            rows.append(
                [
                    name,
                    c["measure"],
                    _amount(c["project"], c["unit"]),
                    f"{_amount(c['baseline'], c['unit'])} ({c['baseline_name']})",
                    _ratio(c["ratio"]),
                    c.get("target") or "",
                    met,
                ]
            )
    return rows


def _machine_line(machine: dict[str, Any]) -> str:
    """One sentence a reader can compare machines by."""
    ram = machine.get("ram_bytes")
    load = machine.get("load_average_start")
    gpus = machine.get("gpus")
    parts = [
        f"{machine.get('cpu_model')}",
        f"{machine.get('cpus_usable')} usable of {machine.get('cpu_count')} CPUs",
        f"{cell(gb(ram))} GB RAM" if ram else "",
        f"GPUs: {', '.join(gpus)}" if gpus else "no GPU" if gpus is not None else "",
        f"Python {machine.get('python')}, TensorFlow {machine.get('tensorflow')}, "
        f"Keras {machine.get('keras')}, NumPy {machine.get('numpy')}",
        f"load average at start {load[0]:.2f}" if load else "",
    ]
    return "; ".join(p for p in parts if p)


def render(report: dict[str, Any]) -> str:
    """The whole markdown report: machine, summary of targets, then each benchmark's tables."""
    lines = [
        f"# Benchmarks ({report['mode']} mode)",
        "",
        f"- Command: `{report['command']}`",
        f"- Started: {report['started']}",
        f"- Machine: {_machine_line(report['machine'])}",
        f"- Git commit: {report['machine'].get('git_commit')}",
        "",
        "Ratios are project / baseline for speeds and baseline / project for times and "
        "memory, so above 1 always means the project is better.",
        "",
        "## Summary",
        "",
    ]
    lines += markdown_table(list(SUMMARY_COLUMNS), summary_rows(report))
    for name, bench in report["benchmarks"].items():
        lines += ["", f"## {name}: {bench.get('title', '')}", ""]
        status = bench.get("status")
        if status != "ok":
            lines.append(f"**{status}**: {bench.get('reason') or ''}")
            continue
        params = ", ".join(f"{k}: {v}" for k, v in bench.get("params", {}).items())
        lines += [f"_{params}; {bench.get('seconds', 0):.1f} s in all_", ""]
        for t in bench.get("tables", []):
            lines += [f"**{t['title']}**", "", *markdown_table(t["columns"], t["rows"]), ""]
        lines += [f"- {note}" for note in bench.get("notes", [])]
    return "\n".join(lines).rstrip() + "\n"


def write(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """benchmarks.json and benchmarks.md, each written whole then renamed (never half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = (out / "benchmarks.json", out / "benchmarks.md")
    texts = (json.dumps(json_ready(report), indent=2, allow_nan=False) + "\n", render(report))
    for path, text in zip(paths, texts, strict=False):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return paths
