"""Figures for the notebooks and the report; each returns a Figure and never calls plt.show.

Figures are built as bare `matplotlib.figure.Figure` objects rather than through pyplot, so
Jupyter shows a returned figure once (no second copy from the inline backend), nothing piles
up in pyplot's registry, and any backend (Agg included) works.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from helpers.core.errors import DataError
from helpers.core.images import read_image
from helpers.core.jsonio import write_json
from helpers.core.labels import EXPRESSION_COLORS, EXPRESSIONS, N_EXPRESSIONS, expression_color
from helpers.core.landmarks import CLOSED_GROUPS, GROUPS, LEFT_EYE_OUTER, N_POINTS, RIGHT_EYE_OUTER
from helpers.evaluation import heatmaps
from helpers.inference.explain import HEAT_CMAP

CLASS_COLORS: tuple[str, ...] = EXPRESSION_COLORS  # helpers.core.labels: one palette
CLASS_PALETTE: dict[str, str] = dict(zip(EXPRESSIONS, CLASS_COLORS, strict=False))

# One colour per landmark group (Okabe-Ito again, bright enough on faces), cycled.
_GROUP_COLORS = (
    "#56B4E9",
    "#E69F00",
    "#E69F00",
    "#009E73",
    "#009E73",
    "#F0E442",
    "#F0E442",
    "#CC79A7",
    "#D55E00",
)
# Outer eye corners get their own markers so users can tell the subject's right from left.
_HIGHLIGHTS = {RIGHT_EYE_OUTER: "#D55E00", LEFT_EYE_OUTER: "#0072B2"}
_CELL_INCHES = 1.6


def _png(fig: Figure) -> bytes:
    """PNG bytes of a figure, cropped to its content, for notebook display and reports."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


# Where figures shown in a notebook are also written as files (keep_figures), and the names
# given so far: the same figure shown twice is written once, two figures never share a file.
_KEPT: dict[str, Any] = {"folder": None, "names": {}}
# The files keep_figures wrote into a folder, listed in it, so the next report clears them.
KEPT_INDEX = ".kept_figures.json"


def keep_figures(folder: str | Path | None) -> Path | None:
    """Write every figure the notebook shows from now on also to folder, as a vector PDF and a
    300-dpi PNG named after the figure (figure_name), so a paper can take any one of them;
    None stops it. The files it wrote there before are removed first (a figure of a model no
    longer in the run does not stay); other files in the folder are left alone."""
    _KEPT["folder"] = None if folder is None else Path(folder)
    _KEPT["names"] = {}
    if _KEPT["folder"] is not None:
        _KEPT["folder"].mkdir(parents=True, exist_ok=True)
        _clear_kept(_KEPT["folder"])
    return _KEPT["folder"]


def _clear_kept(folder: Path) -> None:
    """Remove the files the index says keep_figures wrote to folder, then the index."""
    index = folder / KEPT_INDEX
    try:
        names = json.loads(index.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return
    for name in names if isinstance(names, list) else []:
        if isinstance(name, str) and Path(name).name == name and name.endswith(PRINT_SUFFIXES):
            (folder / name).unlink(missing_ok=True)
    index.unlink(missing_ok=True)


def _slug(text: str) -> str:
    """A file name's stem from a figure's name or title: lower case, words joined by _."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60]


def figure_title(fig: Figure) -> str:
    """A figure's title (its suptitle, else its panels' titles): the report's alt text."""
    title = fig.get_suptitle().strip()
    if title:
        return title
    texts = [
        ax.get_title(loc=loc).strip() for ax in fig.axes for loc in ("left", "center", "right")
    ]
    texts = [t for t in texts if t]
    if texts:
        return "; ".join(texts)
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts).strip() or "Figure"


def figure_name(fig: Figure) -> str:
    """The file name's stem a figure is kept under: its label (set by the plot functions),
    else its title's words."""
    return _slug(str(fig.get_label() or "")) or _slug(figure_title(fig)) or "figure"


# A figure for print: vector PDF, and PNG at 300 dpi for what takes no PDF.
PRINT_FORMATS: tuple[tuple[str, int | None], ...] = ((".pdf", None), (".png", 300))
PRINT_SUFFIXES = tuple(suffix for suffix, _ in PRINT_FORMATS)


def save_figure(fig: Figure, folder: str | Path, name: str | None = None) -> list[Path]:
    """A figure as <name>.pdf (vector) and <name>.png (300 dpi) in folder, cropped to its
    content on white: the files a paper or a slide takes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = name or figure_name(fig)
    written = []
    for suffix, dpi in PRINT_FORMATS:
        path = folder / f"{stem}{suffix}"
        fig.savefig(
            path, dpi=dpi, bbox_inches="tight", pad_inches=SAVE_PAD_INCHES, facecolor="white"
        )
        written.append(path)
    return written


def _keep(fig: Figure) -> None:
    """Write a shown figure to the keep_figures folder once, under a name no other has."""
    folder, names = _KEPT["folder"], _KEPT["names"]
    if folder is None or id(fig) in names:
        return
    base = figure_name(fig)
    stem, count = base, 1
    while stem in names.values():
        count += 1
        stem = f"{base}_{count}"
    names[id(fig)] = stem
    save_figure(fig, folder, stem)
    kept = [f"{s}{suffix}" for s in names.values() for suffix in PRINT_SUFFIXES]
    write_json(folder / KEPT_INDEX, {"files": kept})


def _shown(fig: Figure) -> tuple[bytes, dict[str, str]]:
    """What Jupyter shows for a figure: its PNG, with its title as the image's alt text (the
    report's HTML export puts it on the <img>); kept as files too where keep_figures says."""
    _keep(fig)
    return _png(fig), {"alt": figure_title(fig)}


def _register_notebook_display() -> None:
    """Let Jupyter show the pyplot-free figures these functions return, inline, as PNG."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, _shown)


_register_notebook_display()


def _figure(
    nrows: int, ncols: int, figsize: tuple[float, float], **kw: Any
) -> tuple[Figure, np.ndarray]:
    """A pyplot-free figure with a 2-D array of axes."""
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kw)


def _message_figure(text: str, figsize: tuple[float, float] = (6, 2)) -> Figure:
    """A figure that says why there is nothing to plot, instead of an empty or failing one."""
    fig, axes = _figure(1, 1, figsize)
    axes[0, 0].text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    axes[0, 0].set_axis_off()
    return fig


class Note(str):
    """What a figure function returns where the data has nothing to draw: one sentence, shown
    by Jupyter as text, so no image that only holds a sentence reaches a notebook or report."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        """Jupyter shows the sentence as text, not as a quoted string."""
        return str(self)


def _absent(names: Any) -> str:
    """The classes a figure leaves out because the data has none of them, for its title."""
    names = list(names)
    return f"absent from the data: {', '.join(names)}" if names else ""


def _face_grid(n: int, ncols: int = 4, title_inches: float = 0.6) -> tuple[Figure, np.ndarray]:
    """Up to ncols faces a row, frames off, room for a suptitle."""
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = _figure(nrows, ncols, (3.0 * ncols, 3.2 * nrows + title_inches))
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, axes


def _bare(ax: Axes) -> None:
    """Hide ticks and frame but keep the y label, which carries the row name in grids."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _sample_rows(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Up to n seeded rows in table order."""
    if len(df) <= n:
        return df
    return df.iloc[np.sort(rng.choice(len(df), size=n, replace=False))]


def _show_image(ax: Axes, uri: str) -> np.ndarray:
    """Draw an image in its own pixel coordinates; grayscale stays gray, not viridis."""
    image = read_image(uri)
    _show_pixels(ax, image)
    return image


def _show_pixels(ax: Axes, image: np.ndarray) -> None:
    """Draw decoded pixels; grayscale stays gray, not viridis."""
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)


class _Skipped:
    """Images a sample figure could not decode: counted, so the figure says so and carries on."""

    def __init__(self) -> None:
        self.count = 0
        self.example = ""

    def add(self, error: DataError) -> None:
        """Count one undecodable image, keeping the first as the example."""
        self.count += 1
        name = Path(error.member or error.path).name
        self.example = self.example or f"{name}: {error.problem}"

    def text(self) -> str:
        """What the figure's title says about them (empty when none were skipped)."""
        if not self.count:
            return ""
        return (
            f"{self.count} image(s) could not be decoded and were skipped (e.g. "
            f"{self.example}); notebook 03 leaves such images out"
        )


def _readable(
    picked: pd.DataFrame, pool: pd.DataFrame, skipped: _Skipped
) -> Iterator[tuple[pd.Series, np.ndarray]]:
    """The picked rows with their pixels, then the pool's other rows in table order as stand-ins
    for picked images that cannot be decoded: one bad file never stops a sample figure."""
    rest = pool.loc[~pool.index.isin(picked.index)]
    for _, rec in pd.concat([picked, rest]).iterrows():
        try:
            yield rec, read_image(rec["image"])
        except DataError as error:
            skipped.add(error)


def as_points(landmarks: Any) -> np.ndarray | None:
    """(68, 2) float32 points from an array, a flat x0,y0,... list or a parquet nested list; None
    if absent."""
    if landmarks is None or (not hasattr(landmarks, "__len__") and pd.isna(landmarks)):
        return None
    pts = np.asarray(landmarks)
    if pts.dtype == object:  # parquet gives an object array of per-point arrays
        pts = np.stack([np.asarray(p, dtype=np.float32) for p in pts])
    pts = pts.astype(np.float32)
    if pts.size != 2 * N_POINTS:
        raise ValueError(f"landmarks must hold {N_POINTS} (x, y) points, got shape {pts.shape}")
    pts = pts.reshape(N_POINTS, 2)
    return None if np.isnan(pts).all() else pts


def _class_names(labels: pd.Series) -> pd.Series:
    """Expression indices as class names, for legends and titles."""
    return labels.astype(int).map(dict(enumerate(EXPRESSIONS)))


def draw_landmarks(
    ax: Axes,
    landmarks: Any,
    *,
    color: str | None = None,
    size: float = 8.0,
    linewidth: float = 1.0,
    alpha: float = 0.9,
    highlight: bool = True,
    annotate: bool = False,
) -> Axes:
    """Draw 68 points as connected groups (closed eyes and lips) so a wrong layout is visible.

    `color` None gives each group its own colour; `highlight` marks points 36 (subject's right
    eye, outer corner: image left in a frontal photo) and 45; `annotate` writes their numbers.
    """
    pts = as_points(landmarks)
    if pts is None:
        return ax
    for k, (group, idx) in enumerate(GROUPS.items()):
        line = pts[list(idx)]
        if group in CLOSED_GROUPS:
            line = np.vstack([line, line[:1]])
        c = color or _GROUP_COLORS[k % len(_GROUP_COLORS)]
        ax.plot(line[:, 0], line[:, 1], "-", color=c, linewidth=linewidth, alpha=alpha)
        ax.scatter(line[:, 0], line[:, 1], s=size, color=c, alpha=alpha, linewidths=0, zorder=3)
    if highlight:
        for i, c in _HIGHLIGHTS.items():
            ax.scatter(
                pts[i, 0],
                pts[i, 1],
                s=max(size * 5, 40.0),  # big enough to check left/right at page size
                color=c,
                edgecolors="white",
                linewidths=0.8,
                zorder=4,
            )
            if annotate:
                ax.annotate(
                    str(i),
                    pts[i],
                    xytext=(3, 3),
                    textcoords="offset points",
                    color="white",
                    fontsize=8,
                    fontweight="bold",
                    bbox={"boxstyle": "round,pad=0.1", "fc": c, "ec": "none"},
                )
    return ax


def plot_class_distribution(dist: pd.DataFrame) -> Figure:
    """Counts per class with share labels, one panel per split when the table has splits."""
    groups = list(dist.groupby("split", sort=False)) if "split" in dist.columns else [(None, dist)]
    if not groups:
        return _message_figure("No records: nothing to count.")
    totals = dist.groupby("name", sort=False)["count"].sum()
    absent = [name for name in EXPRESSIONS if name in totals.index and totals[name] == 0]
    fig, axes = _figure(1, len(groups), (max(6.0, 4.5 * len(groups)), 4.0))
    for ax, (split, block) in zip(axes[0], groups, strict=False):
        block = block[~block["name"].isin(absent)].sort_values("expression")
        colors = [CLASS_COLORS[int(e)] for e in block["expression"]]
        bars = ax.bar(block["name"], block["count"], color=colors, edgecolor="0.3", linewidth=0.5)
        ax.bar_label(bars, labels=[f"{s:.1%}" for s in block["share"]], fontsize=8, padding=2)
        ax.tick_params(axis="x", labelrotation=45)
        ax.set_ylabel("records")
        ax.margins(y=0.12)
        total = int(block["count"].sum())
        ax.set_title(
            f"{split} (n={total:,})" if split is not None else f"Expression classes (n={total:,})"
        )
    heading = "Expression classes per split" if len(axes[0]) > 1 or split is not None else ""
    note = "; ".join(t for t in (heading, _absent(absent)) if t)
    if note:
        fig.suptitle(note, fontsize=10)
    return fig


def plot_va_scatter(
    df: pd.DataFrame, max_points: int | None = 5000, seed: int = 0
) -> Figure | None:
    """Valence-arousal circumplex by class with marginal histograms; None for data without
    valence/arousal (FER-2013, ExpW), so no empty figure reaches the notebook or the report."""
    cols = [c for c in ("expression", "valence", "arousal") if c in df.columns]
    if len(cols) < 3:
        return None
    va = df[cols].apply(pd.to_numeric, errors="coerce").dropna()
    if va.empty:
        return None
    n_all = len(va)
    if max_points is not None:
        va = _sample_rows(va, max_points, np.random.default_rng(seed))
    va = va.assign(expression=_class_names(va["expression"]))
    order = [name for name in EXPRESSIONS if name in set(va["expression"])]

    fig = Figure(figsize=(7.5, 7.0), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4))
    ax = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=ax)
    right = fig.add_subplot(grid[1, 1], sharey=ax)
    legend_ax = fig.add_subplot(grid[0, 1])
    common = {"data": va, "hue": "expression", "hue_order": order, "palette": CLASS_PALETTE}
    sns.scatterplot(x="valence", y="arousal", s=12, alpha=0.6, linewidth=0, ax=ax, **common)
    bins = np.linspace(-1, 1, 41)
    sns.histplot(x="valence", bins=bins, multiple="stack", legend=False, ax=top, **common)
    sns.histplot(y="arousal", bins=bins, multiple="stack", legend=False, ax=right, **common)

    ax.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="valence", ylabel="arousal")
    ax.set_aspect("equal")
    for line in (ax.axhline, ax.axvline):
        line(0, color="0.4", linewidth=0.8, zorder=0)
    top.set(xlabel="", ylabel="faces")
    right.set(xlabel="faces", ylabel="")
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    legend_ax.set_axis_off()
    legend_ax.legend(
        handles, labels, loc="center", fontsize="small", frameon=False, markerscale=1.5
    )
    shown = f"{len(va):,} of {n_all:,} shown" if len(va) < n_all else f"n={n_all:,}"
    fig.suptitle(f"Valence-arousal by expression ({shown})")
    return fig


def plot_sample_grid(
    df: pd.DataFrame,
    per_class: int = 6,
    seed: int = 0,
    landmarks: bool = False,
    size: tuple[float, float] | None = None,
) -> Figure:
    """Seeded examples, one row per class the data has (the title names those it lacks); size
    is the figure size in inches. The title says what the grid shows: it is the image's alt."""
    labels = pd.to_numeric(df["expression"], errors="coerce")
    present = [k for k in range(N_EXPRESSIONS) if (labels == k).any()]
    if not present:
        return Note("No labelled faces: no examples to show.")
    rng = np.random.default_rng(seed)
    figsize = size or (_CELL_INCHES * per_class + 1.0, _CELL_INCHES * len(present) + 0.6)
    fig, axes = _figure(len(present), per_class, figsize)
    skipped = _Skipped()
    for row, k in zip(axes, present, strict=True):
        members = df[labels == k]
        picked = _sample_rows(members, per_class, rng)
        for ax in row:
            _bare(ax)
        drawn = zip(row, _readable(picked, members, skipped), strict=False)
        for ax, (rec, image) in drawn:
            _show_pixels(ax, image)
            if landmarks and "landmarks" in df.columns:
                draw_landmarks(ax, rec["landmarks"], size=3, linewidth=0.6, highlight=False)
        row[0].set_ylabel(
            f"{EXPRESSIONS[k]}\n(n={len(members):,})", rotation=0, ha="right", va="center"
        )
    absent = _absent(EXPRESSIONS[k] for k in range(N_EXPRESSIONS) if k not in present)
    lines = [
        f"Up to {per_class} seeded example faces per expression class, one row each"
        + (f" ({absent})" if absent else ""),
        skipped.text(),
    ]
    fig.suptitle("\n".join(line for line in lines if line), fontsize=9)
    return fig


def plot_landmarks(df: pd.DataFrame, n: int = 8, seed: int = 0) -> Figure | Note:
    """Seeded faces with their landmarks by group and points 36/45 marked, to check coordinates;
    a Note for data without landmarks."""
    if "landmarks" not in df.columns:
        return Note("This dataset has no landmarks: no landmark figure.")
    has = df["landmarks"].map(lambda v: as_points(v) is not None).astype(bool)
    picked = _sample_rows(df[has], n, np.random.default_rng(seed))
    if picked.empty:
        return Note("This dataset has no landmarks: no landmark figure.")
    fig, axes = _face_grid(len(picked), title_inches=0.6)
    skipped = _Skipped()
    for ax, (rec, image) in zip(axes.flat, _readable(picked, df[has], skipped), strict=False):
        _show_pixels(ax, image)
        draw_landmarks(ax, rec["landmarks"], annotate=True)
        label = EXPRESSIONS[int(rec["expression"])] if "expression" in rec else ""
        ax.set_title(f"{rec['id']}  {label}", fontsize=9)
    title = (
        "Landmarks by group; 36 = subject's right eye outer corner (image left when "
        "frontal), 45 = left eye outer corner"
    )
    fig.suptitle(title + (f"\n{skipped.text()}" if skipped.count else ""), fontsize=10)
    return fig


def plot_image_stats(stats: pd.DataFrame) -> Figure:
    """Brightness and contrast histograms and the most common image sizes."""
    if stats.empty:
        return _message_figure("No image statistics: the sample is empty.")
    kinds = (
        stats["width"].astype(str)
        + "×"
        + stats["height"].astype(str)
        + " "
        + stats["channels"].map({1: "gray", 3: "RGB"}).fillna(stats["channels"].astype(str) + "ch")
    )
    one_size = kinds.nunique() == 1  # a single full-width bar: the title says it instead
    fig, axes = _figure(1, 2 if one_size else 3, (9.0 if one_size else 13.0, 3.8))
    sns.histplot(
        stats["brightness"], bins=np.linspace(0, 255, 52), color=CLASS_COLORS[2], ax=axes[0, 0]
    )
    axes[0, 0].set(title="Mean brightness", xlabel="grey level (0-255)", ylabel="images")
    sns.histplot(stats["contrast"], bins=40, color=CLASS_COLORS[1], ax=axes[0, 1])
    axes[0, 1].set(title="RMS contrast", xlabel="grey-level std", ylabel="images")
    if one_size:
        fig.suptitle(f"Image statistics over {len(stats):,} images, all {kinds.iloc[0]}")
        return fig
    counts = kinds.value_counts().head(10).iloc[::-1]
    bars = axes[0, 2].barh(counts.index, counts.to_numpy(), color=CLASS_COLORS[5])
    axes[0, 2].bar_label(bars, fontsize=8, padding=2)
    axes[0, 2].margins(x=0.15)
    axes[0, 2].set(title=f"Image sizes (top {len(counts)})", xlabel="images")
    fig.suptitle(f"Image statistics over {len(stats):,} images")
    return fig


def _label_name(value: Any) -> str:
    """A record's expression as its name, for a caption; empty when unlabelled."""
    label = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return EXPRESSIONS[int(label)] if pd.notna(label) and 0 <= label < N_EXPRESSIONS else ""


def _conflicts_first(pairs: pd.DataFrame, by_id: pd.DataFrame) -> pd.DataFrame:
    """Duplicate pairs whose two records are labelled differently first (the ones that matter),
    each group in its own order (closest first)."""
    if "expression" not in by_id.columns:
        return pairs
    labels = by_id["expression"]
    a = pairs["id_a"].map(labels)
    b = pairs["id_b"].map(labels)
    differ = (a != b) & a.notna() & b.notna()
    return pd.concat([pairs[differ], pairs[~differ]])


def plot_duplicates(df: pd.DataFrame, pairs: pd.DataFrame, n: int = 6) -> Figure | None:
    """The closest duplicate pairs side by side, with their kind, distance and splits; None
    without any (the count of pairs, printed beside it, says so: no figure of a sentence)."""
    if pairs.empty:
        return None
    by_id = df.drop_duplicates("id").set_index("id")
    top = _conflicts_first(pairs, by_id).head(n)
    missing = sorted(set(top["id_a"]).union(top["id_b"]) - set(by_id.index))
    if missing:
        raise ValueError(f"duplicate pairs name ids missing from the records table: {missing[:5]}")
    fig, axes = _figure(len(top), 2, (6.0, 3.0 * len(top)))
    for row, pair in zip(axes, top.itertuples(index=False), strict=False):
        for ax, rid in zip(row, (pair.id_a, pair.id_b), strict=False):
            rec = by_id.loc[rid]
            _bare(ax)
            _show_image(ax, rec["image"])
            split = rec.get("split")
            where = f" [{split}]" if isinstance(split, str) else ""
            label = _label_name(rec.get("expression"))
            ax.set_title(f"{rid}{where}" + (f"\n{label}" if label else ""), fontsize=9)
        row[0].set_ylabel(f"{pair.kind}\nd={pair.distance}", rotation=0, ha="right", va="center")
    fig.suptitle(
        f"{len(top)} of {len(pairs):,} duplicate pairs: those labelled differently first, then "
        "the closest (d: bits apart)",
        fontsize=10,
    )
    return fig


def plot_balance(summary: pd.DataFrame) -> Figure | Note:
    """Train-split counts per class before and after balancing, side by side on one scale; a
    Note when balancing changed nothing (two equal panels would say the same)."""
    if summary.empty:
        return _message_figure("No training rows: nothing to balance.")
    if summary["before"].equals(summary["after"]):
        return Note(
            f"Balancing left the train split as it was ({int(summary['after'].sum()):,} images):"
            " its class counts are those above."
        )
    names = list(summary.index)
    colors = [expression_color(n) for n in names]
    fig, axes = _figure(1, 2, (12.0, 4.0), sharey=True)
    for ax, column, title in (
        (axes[0, 0], "before", "Before balancing"),
        (axes[0, 1], "after", "After balancing"),
    ):
        bars = ax.bar(names, summary[column].to_numpy(), color=colors)
        ax.bar_label(bars, fontsize=8, padding=2)
        ax.set_title(f"{title} ({int(summary[column].sum()):,} train images)")
        ax.tick_params(axis="x", rotation=45)
        ax.margins(y=0.12)  # room for the count over the tallest bar
    axes[0, 0].set_ylabel("train images")
    if "generated" in summary.columns and summary["generated"].sum():
        from matplotlib.patches import Patch

        kept = summary["after"] - summary["generated"]
        axes[0, 1].bar(
            names,
            kept.to_numpy(),
            color="white",
            alpha=0.35,
            hatch="//",
            edgecolor="0.3",
            linewidth=0,
        )
        handles = [
            Patch(facecolor="0.6", hatch="//", edgecolor="0.3", label="originals (hatched)"),
            Patch(facecolor="0.6", label="augmented copies (solid)"),
        ]
        axes[0, 1].legend(handles=handles, loc="upper right", fontsize=8, handlelength=2.5,
                          handleheight=1.5)  # fmt: skip
    return fig


def plot_augmented_examples(
    records: pd.DataFrame,
    manifest: pd.DataFrame,
    n: int = 4,
    copies: int = 4,
    seed: int = 0,
    cfg: Any = None,
) -> Figure | Note:
    """Source faces next to their augmented copies, landmarks drawn, so transforms can be checked
    (a Note when no copies were written).

    Copies are read from their files; with `cfg` (an AugmentConfig) they are rendered from the
    source with each copy's transform seed instead, as online augmentation will produce them.
    """
    if manifest.empty:
        return Note("No augmented images were written (balancing did not upsample): none to show.")
    rng = np.random.default_rng(seed)
    sources = manifest["source_id"].drop_duplicates()
    picked = sources.iloc[
        np.sort(rng.choice(len(sources), size=min(n, len(sources)), replace=False))
    ]
    by_id = records.drop_duplicates("id").set_index("id")
    fig, axes = _figure(
        len(picked), copies + 1, (_CELL_INCHES * (copies + 1), _CELL_INCHES * len(picked) + 0.5)
    )
    for row, source_id in zip(axes, picked, strict=False):
        rec = by_id.loc[source_id]
        for ax in row:
            _bare(ax)
        _show_image(row[0], rec["image"])
        draw_landmarks(row[0], rec.get("landmarks"), size=3, linewidth=0.6, highlight=True)
        row[0].set_title(f"source {source_id}", fontsize=8)
        row[0].set_ylabel(EXPRESSIONS[int(rec["expression"])], rotation=0, ha="right", va="center")
        made = manifest[manifest["source_id"] == source_id].head(copies)
        pairs = zip(row[1:], made.iterrows(), strict=False)
        for number, (ax, (_, aug)) in enumerate(pairs, start=1):
            if cfg is None:
                _show_image(ax, aug["image"])
                pts = aug["landmarks"]
            else:
                from helpers.data.augment import augment

                image, pts = augment(
                    read_image(rec["image"]),
                    as_points(rec.get("landmarks")),
                    cfg,
                    int(aug["transform_seed"]),
                )
                ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            draw_landmarks(ax, pts, size=3, linewidth=0.6, highlight=True)
            ax.set_title(f"copy {number}", fontsize=8)
    fig.suptitle(
        "Augmented copies (right) of training faces (left); points 36/45 marked "
        "to show left/right stay right after flips",
        fontsize=10,
    )
    return fig


# --------------------------------------------------------------------------- evaluation (05, 06)

# Truth and prediction in landmark overlays: Okabe-Ito bluish green and vermillion.
TRUTH_COLOR, PRED_COLOR = "#009E73", "#D55E00"
# Models in comparison charts, in table order (Okabe-Ito without its yellow, which is faint).
_MODEL_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#999999")
# A report figure's widest: a page's text width (7 in), so its text prints readably, less the
# 0.1 in a tight crop pads each side with, so the saved file stays within 7 in too.
SAVE_PAD_INCHES = 0.1
PAGE_INCHES = 7.0 - 2 * SAVE_PAD_INCHES


def _text_color(background: str) -> str:
    """Black on a light colour, white on a dark one: a label inside a bar stays legible."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(background)
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


# Headline metric per task for comparisons: (column suffix, label, lower is better).
_HEADLINE_METRICS = {
    "expression": ("f1_macro", "macro F1", False),
    "valence": ("ccc", "CCC", False),
    "arousal": ("ccc", "CCC", False),
    "landmarks": ("nme", "NME", True),
}
_LOWER_IS_BETTER = ("loss", "mae", "mse", "rmse", "nme", "error")

# Score ranges drawn in full, so noise around a score is not stretched into steep falls.
_METRIC_BOUNDS = {"f1_macro": (0.0, 1.0), "accuracy": (0.0, 1.0), "ccc": (-1.0, 1.0)}
MIN_SPAN = 0.2  # the least y range of an unbounded error panel (NME), from 0


def metric_limits(key: str, values: Any) -> tuple[float, float]:
    """A panel's y range on the metric's own scale: a score in [0, 1] (F1, accuracy) on 0-1, a
    CCC on 0-1 when no value is below 0 and on -1..1 otherwise, an error (NME) from 0 to above
    its largest value, at least MIN_SPAN high: a change of 0.002 then looks like one."""
    found = [float(v) for v in np.ravel(np.asarray(values, dtype=np.float64)) if np.isfinite(v)]
    bounds = _METRIC_BOUNDS.get(key)
    if bounds is not None:
        low, high = bounds
        if low < 0 and all(v >= 0 for v in found):
            low = 0.0
        return low, high
    return 0.0, max(MIN_SPAN, 1.1 * max(found, default=0.0))


def _row_normalised(cm: np.ndarray) -> np.ndarray:
    """Each true class's row as shares (recall on the diagonal); NaN for classes never seen."""
    totals = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, totals, out=np.full(cm.shape, np.nan), where=totals > 0)


def _heatmap(
    ax: Axes,
    values: np.ndarray,
    labels: list[str],
    fmt: str,
    annot_text: np.ndarray | None = None,
    **kw: Any,
) -> None:
    """A labelled confusion heatmap, annotation size scaled to the class count; annot_text,
    where given, the text of each cell instead of its value in fmt."""
    size = 9 if len(labels) <= 8 else 7
    sns.heatmap(
        values,
        annot=True if annot_text is None else annot_text,
        fmt=fmt,
        cmap="Blues",
        square=True,
        cbar=False,
        xticklabels=labels,
        yticklabels=labels,
        annot_kws={"fontsize": size},
        ax=ax,
        **kw,
    )
    ax.set(xlabel="predicted", ylabel="true")
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)


def plot_confusion_matrices(cm: Any, labels: list[str], title: str = "") -> Figure:
    """Counts show where the data is; row shares show per-class recall whatever the imbalance."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.size == 0 or cm.sum() == 0:
        return _message_figure("No scored predictions: no confusion matrix.")
    k = len(labels)
    fig, axes = _figure(1, 2, (2 * (0.7 * k + 1.5) + 0.5, 0.7 * k + 2.4))
    _heatmap(axes[0, 0], cm, list(labels), "d")
    axes[0, 0].set_title(f"Counts (n={int(cm.sum()):,})")
    _heatmap(axes[0, 1], _row_normalised(cm), list(labels), ".2f", vmin=0, vmax=1)
    axes[0, 1].set_title("Share of each true class (recall on the diagonal)")
    accuracy = np.trace(cm) / cm.sum()
    fig.suptitle(f"{title + ': ' if title else ''}accuracy {accuracy:.3f}")
    return fig


def plot_confusion_grid(cms: dict[str, tuple[Any, list[str]]], name: str = "") -> Figure:
    """Row-normalised confusion matrices of several models on one scale, to compare errors;
    name (a test set's) goes into the figure's file name."""
    items = [
        (m, np.asarray(cm, dtype=np.int64), list(lab))
        for m, (cm, lab) in cms.items()
        if np.asarray(cm).size and np.asarray(cm).sum() > 0
    ]
    if not items:
        return _message_figure("No confusion matrices to compare.")
    ncols = min(2, len(items))
    nrows = math.ceil(len(items) / ncols)
    k = max(len(lab) for _, _, lab in items)
    side = min(PAGE_INCHES / ncols, 0.4 * k + 0.8)
    fig, axes = _figure(nrows, ncols, (side * ncols, (side + 0.3) * nrows))
    fig.set_label(_slug(f"confusion_matrices_{name}"))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (model, cm, labels) in zip(axes.flat, items, strict=False):
        ax.set_axis_on()
        shares = _row_normalised(cm)
        _heatmap(ax, shares, labels, "", vmin=0, vmax=1, annot_text=_percent_cells(cm, shares))
        ax.set_title(f"{model} (accuracy {np.trace(cm) / cm.sum():.3f})", fontsize=9)
        ax.tick_params(labelsize=8)
    fig.suptitle("Percent of each true class predicted as each class (blank: none)", fontsize=10)
    return fig


def _percent_cells(cm: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Each cell's share as a whole percent, blank where no face fell and "<1" where a few
    did: at most three characters, so an 8x8 grid at a half page's width stays legible."""
    text = np.full(cm.shape, "", dtype=object)
    seen = (cm > 0) & np.isfinite(shares)
    percent = np.rint(np.nan_to_num(shares) * 100).astype(int)
    text[seen] = [str(v) for v in percent[seen]]
    text[seen & (percent == 0)] = "<1"
    return text


def plot_per_class_f1(table: pd.DataFrame) -> Figure:
    """Each model's F1 per expression class on one 0-1 scale (comparison.per_class_scores): a
    class a model misses, which its macro-F1 averages away, shows as one pale cell."""
    missing = [str(m) for m in table.attrs.get("missing", [])]
    later = (
        f"; not in the metrics of {', '.join(missing)} (run notebook 05 again)" if missing else ""
    )
    if table.empty:
        return _message_figure(f"No per-class scores to compare{later}.", figsize=(8, 1.5))
    values = table.astype(float)
    fig, axes = _figure(
        1, 1, (min(PAGE_INCHES, max(6.0, 0.95 * values.shape[1] + 2.5)), 0.45 * len(values) + 1.9)
    )
    fig.set_label("per_class_f1")
    ax = axes[0, 0]
    sns.heatmap(
        values,
        annot=True,
        fmt=".2f",
        cmap="Blues",
        vmin=0,
        vmax=1,
        linewidths=0.5,
        cbar_kws={"label": "F1"},
        annot_kws={"fontsize": 9},
        ax=ax,
    )
    ax.set(xlabel="class", ylabel="")
    ax.tick_params(axis="x", labelrotation=30)
    ax.tick_params(axis="y", labelrotation=0)
    ax.set_title(f"F1 of each expression class on the test split{later}", fontsize=10)
    return fig


def _class_scores(
    predictions: pd.DataFrame, labels: list[str]
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(class, is-this-class truth, its probability) for classes with positives and negatives."""
    if "expression" not in predictions.columns:
        return []
    scored = predictions[pd.to_numeric(predictions["expression"], errors="coerce") >= 0]
    truth = scored["expression"].astype(int).to_numpy()
    out = []
    for name in labels:
        column = f"p_{name}"
        if name not in EXPRESSIONS or column not in scored.columns:
            continue
        positive = truth == EXPRESSIONS.index(name)
        if 0 < positive.sum() < len(positive):
            out.append((name, positive, scored[column].to_numpy(dtype=np.float64)))
    return out


# Why a head whose class probabilities do not vary gets no ROC or PR curve, and ROC-AUC and
# PR-AUC n/a in its metrics (metrics.constant_proba, the one rule for both).
CONSTANT_PROBA_TEXT = (
    "The class probabilities are the same for every face but for float rounding: ROC and PR "
    "curves would rank the faces by rounding, so none is drawn (ROC-AUC and PR-AUC: n/a)."
)


def plot_roc_pr(predictions: pd.DataFrame, labels: list[str]) -> Figure | Note:
    """One-vs-rest ROC and precision-recall per class; classes the truth lacks are skipped,
    and a head whose probabilities are constant gets a sentence (a Note), as its metrics get
    no AUC."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    from helpers.evaluation.metrics import constant_proba

    curves = _class_scores(predictions, list(labels))
    if not curves:
        return Note(
            "No class has both positive and negative examples with "
            "probabilities: no ROC or PR curves."
        )
    columns = np.column_stack([score for _, _, score in curves])
    if len(curves) > 1 and constant_proba(columns, range(len(curves))):
        return Note(CONSTANT_PROBA_TEXT)
    fig, axes = _figure(1, 2, (12.0, 5.0))
    roc_ax, pr_ax = axes[0, 0], axes[0, 1]
    for name, positive, score in curves:
        color = CLASS_PALETTE.get(name)
        fpr, tpr, _ = roc_curve(positive, score)
        roc_ax.plot(fpr, tpr, color=color, label=f"{name} (AUC {auc(fpr, tpr):.2f})")
        precision, recall, _ = precision_recall_curve(positive, score)
        ap = average_precision_score(positive, score)
        pr_ax.plot(
            recall,
            precision,
            color=color,
            drawstyle="steps-post",
            label=f"{name} (AUC {ap:.2f}, base {positive.mean():.2f})",
        )
    roc_ax.plot([0, 1], [0, 1], ":", color="0.5", linewidth=1)
    roc_ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="ROC, one class vs the rest",
    )
    pr_ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.01),
        title="Precision-recall (AUC = average precision; base = chance level)",
    )
    for ax in (roc_ax, pr_ax):  # legends below the panels, off the curves
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2)
        ax.set_aspect("equal")
    return fig


def plot_reliability(correct: Any, confidence: Any, n_bins: int = 15, title: str = "") -> Figure:
    """Accuracy against confidence per bin: a bar below the diagonal is over-confidence."""
    from helpers.evaluation.metrics import expected_calibration_error, reliability_bins

    bins = reliability_bins(correct, confidence, n_bins)
    filled = bins[bins["count"] > 0]
    if filled.empty:
        return _message_figure("No scored expression probabilities: no reliability diagram.")
    centres = (filled["low"] + filled["high"]) / 2
    bar = {"width": 1.0 / n_bins, "edgecolor": "white"}
    fig, axes = _figure(2, 1, (5.5, 6.5), sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top, counts = axes[0, 0], axes[1, 0]
    top.bar(centres, filled["accuracy"], color=CLASS_COLORS[2], label="accuracy", **bar)
    top.plot(
        centres, filled["confidence"], "_", color="0.2", markersize=12, label="mean confidence"
    )
    top.plot([0, 1], [0, 1], "--", color="0.4", linewidth=1, label="perfectly calibrated")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.01))
    top.legend(loc="upper left", fontsize=8)
    counts.bar(centres, filled["count"], color="0.8", **bar)
    counts.set(xlabel="confidence (top probability)", ylabel="images")
    ece = expected_calibration_error(correct, confidence, n_bins)
    n = int(filled["count"].sum())
    fig.suptitle(f"{title + ': ' if title else ''}ECE {ece:.3f} (n={n:,}, {n_bins} bins)")
    return fig


def plot_va_predictions(
    predictions: pd.DataFrame, max_points: int = 5000, seed: int = 0, title: str = ""
) -> Figure | None:
    """Predicted against true valence and arousal; points on the diagonal are right. None when
    there is no valence/arousal truth with predictions, so no empty figure is shown."""
    from helpers.evaluation.metrics import ccc

    pairs = {}
    for head in ("valence", "arousal"):
        if {head, f"{head}_pred"} <= set(predictions.columns):
            t = pd.to_numeric(predictions[head], errors="coerce").to_numpy(np.float64)
            p = pd.to_numeric(predictions[f"{head}_pred"], errors="coerce").to_numpy(np.float64)
            keep = np.isfinite(t) & np.isfinite(p)
            if keep.any():
                pairs[head] = (t[keep], p[keep])
    if not pairs:
        return None
    rng = np.random.default_rng(seed)
    fig, axes = _figure(1, 2, (PAGE_INCHES, 3.8))
    fig.set_label(_slug(f"va_predictions_{title}"))
    for ax, head in zip(axes[0], ("valence", "arousal"), strict=False):
        if head not in pairs:
            ax.text(0.5, 0.5, f"no {head} truth or prediction", ha="center", va="center")
            ax.set_axis_off()
            continue
        t, p = pairs[head]
        shown = (
            rng.choice(t.size, max_points, replace=False) if t.size > max_points else slice(None)
        )
        ax.scatter(t[shown], p[shown], s=8, alpha=0.4, linewidths=0, color=CLASS_COLORS[2])
        ax.plot([-1, 1], [-1, 1], "--", color="0.3", linewidth=1, label="prediction = truth")
        ax.set(
            xlim=(-1.05, 1.05),
            ylim=(-1.05, 1.05),
            xlabel=f"true {head}",
            ylabel=f"predicted {head}",
        )
        ax.set_aspect("equal")
        ax.set_title(f"{head.capitalize()}: CCC {float(ccc(t, p)):.3f} (n={t.size:,})", fontsize=9)
    # one key below the panels: inside one, it would sit on predictions that cluster at an edge
    lines = [line for ax in axes[0] for line in ax.get_lines()][:1]
    fig.legend(handles=lines, loc="outside lower center", fontsize=8, frameon=False)
    if title:
        fig.suptitle(f"{title}: predicted against true valence and arousal", fontsize=10)
    return fig


def plot_landmark_predictions(
    predictions: pd.DataFrame, n: int = 8, seed: int = 0
) -> Figure | Note:
    """Predicted and true landmarks on the faces, with each face's NME, to see how errors look;
    a Note for a model without a landmark head."""
    from matplotlib.lines import Line2D

    from helpers.evaluation.metrics import per_image_nme

    if "landmarks_pred" not in predictions.columns or "image" not in predictions.columns:
        return Note("The model predicts no landmarks: no landmark figure.")
    pred = predictions["landmarks_pred"].map(lambda v: as_points(v) is not None).astype(bool)
    truth = (
        predictions["landmarks"].map(lambda v: as_points(v) is not None).astype(bool)
        if "landmarks" in predictions.columns
        else pd.Series(False, index=predictions.index)
    )
    pool = predictions[pred & truth] if (pred & truth).any() else predictions[pred]
    picked = _sample_rows(pool, n, np.random.default_rng(seed))
    if picked.empty:
        return _message_figure("No landmark predictions: nothing to draw.")
    fig, axes = _face_grid(len(picked), title_inches=0.8)
    for ax, (_, rec) in zip(axes.flat, picked.iterrows(), strict=False):
        _show_image(ax, rec["image"])
        true_pts = as_points(rec["landmarks"]) if "landmarks" in rec else None
        pred_pts = as_points(rec["landmarks_pred"])
        label = str(rec["id"])
        if true_pts is not None:
            draw_landmarks(ax, true_pts, color=TRUTH_COLOR, size=5, linewidth=0.8, highlight=False)
            nme = per_image_nme(true_pts[None], pred_pts[None])
            if nme.size:
                label += f"  NME {float(nme[0]):.3f}"
        draw_landmarks(ax, pred_pts, color=PRED_COLOR, size=5, linewidth=0.8, highlight=False)
        ax.set_title(label, fontsize=9)
    handles = [
        Line2D([], [], color=TRUTH_COLOR, marker="o", label="truth"),
        Line2D([], [], color=PRED_COLOR, marker="o", label="prediction"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    fig.suptitle(
        "Predicted landmarks against the truth (NME: mean error / outer-eye distance)", fontsize=10
    )
    return fig


def plot_confident_mistakes(predictions: pd.DataFrame, n: int = 12) -> Figure:
    """The wrong answers the model was surest of: often label noise, look-alike classes or bias."""
    from helpers.evaluation.predictions import confident_mistakes

    wrong = confident_mistakes(predictions, n=n)
    if wrong.empty or "image" not in wrong.columns:
        return _message_figure("No wrong expression predictions to show.")
    ncols = min(6, len(wrong))
    nrows = math.ceil(len(wrong) / ncols)
    fig, axes = _figure(nrows, ncols, (2.2 * ncols, 2.6 * nrows + 0.5))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, (_, rec) in zip(axes.flat, wrong.iterrows(), strict=False):
        _show_image(ax, rec["image"])
        true_name = EXPRESSIONS[int(rec["expression"])]
        pred_name = EXPRESSIONS[int(rec["expression_pred"])]
        ax.set_title(f"true {true_name}\npred {pred_name} ({rec['confidence']:.2f})", fontsize=8)
    fig.suptitle(
        f"The {len(wrong)} most confident mistakes (predicted class, its probability)", fontsize=10
    )
    return fig


def _metric_pairs(history: pd.DataFrame) -> list[tuple[str, str | None, str | None]]:
    """(metric, train column, val column) for each metric, pairing x with val_x."""
    # Bookkeeping columns training.py logs beside the metrics.
    skip = {
        "epoch",
        "lr",
        "learning_rate",
        "time",
        "seconds",
        "time_s",
        "phase",
        "train_images_per_s",
    }
    columns = [
        str(c)
        for c in history.columns
        if str(c) not in skip and pd.api.types.is_numeric_dtype(history[c])
    ]
    pairs = []
    for c in columns:
        if c.startswith("val_"):
            if c[4:] not in columns:
                pairs.append((c[4:], None, c))
        else:
            pairs.append((c, c, f"val_{c}" if f"val_{c}" in columns else None))
    return sorted(pairs, key=lambda pair: _HEADS.index(_split_metric(pair[0])[0]))


# Heads in the order the notebooks discuss them ("" is the whole model's, e.g. its total loss),
# and the words for Keras's metric names in panel titles.
_HEADS = ("", "expression", "valence", "arousal", "landmarks")
_METRIC_WORDS = {
    "accuracy": "accuracy",
    "ccc": "CCC",
    "rmse": "RMSE",
    "nme": "NME",
    "mae": "MAE",
    "f1_macro": "macro F1",
    "loss": "loss",
}


def _split_metric(metric: str) -> tuple[str, str]:
    """A history column's head and metric: 'valence_ccc' -> ('valence', 'ccc')."""
    for head in _HEADS[1:]:
        if metric.startswith(f"{head}_"):
            return head, metric[len(head) + 1 :]
    return "", metric


def metric_title(metric: str) -> str:
    """A history column in words for a panel title: 'arousal_ccc' -> 'arousal CCC'."""
    head, key = _split_metric(metric)
    words = _METRIC_WORDS.get(key, key.replace("_", " "))
    return f"{head} {words}" if head else words


def _bounded(ax: Axes, metric: str, values: Any) -> None:
    """A score with a fixed range (accuracy, F1, CCC) drawn on all of it, so a value near chance
    does not fill its panel and read as a good one."""
    key = _split_metric(metric)[1]
    if key in _METRIC_BOUNDS:
        ax.set_ylim(*metric_limits(key, values))


def plot_learning_curves(
    history: pd.DataFrame, title: str = "", card: Mapping[str, Any] | None = None
) -> Figure:
    """Train vs validation per loss and metric; a gap that widens means overfitting. With the
    model card, every panel marks the epoch kept (the card's `best`, chosen by one validation
    score), so no panel's own best validation epoch is taken for the model kept."""
    pairs = _metric_pairs(history) if history is not None and len(history) else []
    if not pairs:
        return _message_figure("No training history: nothing to plot.")
    x = (
        (history["epoch"].to_numpy() + 1)
        if "epoch" in history.columns
        else np.arange(1, len(history) + 1)
    )
    ncols = min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    fig, axes = _figure(nrows, ncols, (min(PAGE_INCHES, 3.0 * ncols), 2.3 * nrows + 0.5))
    fig.set_label(_slug(f"learning_curves_{title}"))
    for ax in axes.flat[len(pairs) :]:
        ax.set_axis_off()
    if len(history) == 1:  # one epoch has no curve: compare train and validation as bars
        for ax, (metric, train, val) in zip(axes.flat, pairs, strict=False):
            names = [n for n, c in (("train", train), ("val", val)) if c is not None]
            values = [float(history[c].iloc[0]) for c in (train, val) if c is not None]
            ax.bar(names, values, color=[CLASS_COLORS[2], CLASS_COLORS[6]][: len(names)])
            ax.set_title(metric_title(metric), fontsize=9)
            ax.tick_params(labelsize=8)
            _bounded(ax, metric, values)
            for at, value in enumerate(values):  # a missing score says so, not an empty slot
                if not np.isfinite(value):
                    ax.text(at, 0.5, "n/a", transform=ax.get_xaxis_transform(), ha="center")
        fig.suptitle(f"{title or 'Training'}: one epoch, train against validation")
        return fig
    kept = kept_epoch_label(card)
    for ax, (metric, train, val) in zip(axes.flat, pairs, strict=False):
        if train is not None:
            ax.plot(x, history[train], "-o", markersize=3, color=CLASS_COLORS[2], label="train")
        if val is not None:
            values = history[val].to_numpy(dtype=np.float64)
            ax.plot(x, values, "--o", markersize=3, color=CLASS_COLORS[6], label="val")
        if kept is not None and kept[0] in x:
            ax.axvline(kept[0], color="black", linewidth=1.2, alpha=0.7, label=kept[1])
            if val is not None:  # the kept model's own validation score, on the dashed curve
                at = int(np.flatnonzero(x == kept[0])[0])
                ax.scatter([kept[0]], [history[val].iloc[at]], marker="D", s=28, color="black",
                           zorder=4, label="_nolegend_")  # fmt: skip
        if "phase" in history.columns:  # where fine-tuning starts (two-phase transfer learning)
            for start in np.flatnonzero(np.diff(history["phase"].to_numpy()) != 0) + 1:
                ax.axvline(x[start] - 0.5, color="0.5", linestyle=":", linewidth=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        _bounded(ax, metric, [history[c] for c in (train, val) if c is not None])
        ax.set_title(metric_title(metric), fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(f"{title}: learning curves" if title else "Learning curves", fontsize=10)
    return fig


def kept_epoch_label(card: Mapping[str, Any] | None) -> tuple[int, str] | None:
    """The epoch a model card says was kept (1-based, as the card counts) and its legend
    label, saying which validation score chose it; None without one."""
    best = (card or {}).get("best") or {}
    epoch = best.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        return None
    monitor = str(best.get("monitor") or "val_loss")
    rule = "lowest" if any(w in monitor for w in _LOWER_IS_BETTER) else "highest"
    label = f"kept: epoch {epoch} ({rule} {monitor})"
    average = (card or {}).get("weight_average")
    if isinstance(average, Mapping) and average.get("kept"):
        label = f"epoch {epoch} ({rule} {monitor}); the weight average kept"
    return epoch, label


def plot_metric_comparison(table: pd.DataFrame) -> Figure:
    """Each task's headline metric per model with its 95% CI: the scores at a glance (whether a
    lead is real is plot_paired_leads', from the same test images)."""
    tasks = [
        t
        for t, (m, _, _) in _HEADLINE_METRICS.items()
        if f"{t}_{m}" in table.columns and table[f"{t}_{m}"].notna().any()
    ]
    if table.empty or not tasks:
        return _message_figure("No model metrics to compare.")
    models = table["model"].astype(str).tolist()
    colors = [_MODEL_COLORS[i % len(_MODEL_COLORS)] for i in range(len(models))]
    ncols = min(2, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    width = min(PAGE_INCHES / ncols, max(2.6, 0.55 * len(models) + 1.2))
    fig, axes = _figure(nrows, ncols, (width * ncols, 2.9 * nrows + 0.4))
    fig.set_label("metric_comparison")
    for ax in axes.flat[len(tasks) :]:
        ax.remove()
    for ax, task in zip(axes.flat, tasks, strict=False):
        metric, label, lower = _HEADLINE_METRICS[task]
        column = f"{task}_{metric}"
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        low = pd.to_numeric(
            table.get(f"{column}_ci_low", pd.Series(np.nan, index=table.index)), errors="coerce"
        ).to_numpy(np.float64)
        high = pd.to_numeric(
            table.get(f"{column}_ci_high", pd.Series(np.nan, index=table.index)), errors="coerce"
        ).to_numpy(np.float64)
        bars = ax.bar(models, np.nan_to_num(values), color=colors)
        has_ci = np.isfinite(values) & np.isfinite(low) & np.isfinite(high)
        if has_ci.any():
            err = np.vstack([values - low, high - values])[:, has_ci].clip(min=0)
            ax.errorbar(
                np.flatnonzero(has_ci),
                values[has_ci],
                yerr=err,
                fmt="none",
                capsize=4,
                elinewidth=1,
                ecolor="0.2",
            )
        # The score's whole range (F1 0-1, CCC 0-1 or -1..1): a score near chance looks small.
        ax.set_ylim(*metric_limits(metric, np.concatenate([values, low, high])))
        text = ["n/a" if np.isnan(v) else f"{v:.3f}" for v in values]
        # Inside a bar in white where it has room; above a short one (0.002 would vanish).
        room = np.abs(np.nan_to_num(values)) >= 0.15 * max(np.abs(ax.get_ylim()))
        for i, (bar, shown_text) in enumerate(zip(bars, text, strict=True)):
            inside = bool(room[i])
            ax.annotate(
                shown_text,
                (
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_height() / 2 if inside else max(bar.get_height(), 0),
                ),
                xytext=(0, 0 if inside else 3),
                textcoords="offset points",
                ha="center",
                va="center" if inside else "bottom",
                fontsize=8,
                fontweight="bold",
                color=_text_color(colors[i]) if inside else "0.15",
            )
        ax.set_title(
            f"{task.capitalize()}: {label}\n({'lower' if lower else 'higher'} is better)",
            fontsize=9,
        )
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.axhline(0, color="0.4", linewidth=0.8)
    fig.suptitle("Headline metric per model, 95% bootstrap CI")
    return fig


def plot_paired_leads(paired: pd.DataFrame) -> Figure:
    """Each best model's lead over every other model with its paired 95% CI, a panel per task
    (helpers.evaluation.paired.paired_table): a lead whose bar clears 0 is one the test images
    support, where the models' own intervals in plot_metric_comparison may still overlap."""
    lead = pd.to_numeric(paired.get("lead", pd.Series(dtype=float)), errors="coerce")
    rows = paired[np.isfinite(lead.to_numpy(np.float64))] if len(paired) else paired
    if rows.empty:
        return _message_figure("No task has two models that learned it: no lead to compare.")
    tasks = list(dict.fromkeys(rows["task"]))
    tallest = int(rows.groupby("task").size().max())
    ncols = min(2, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig, axes = _figure(nrows, ncols, (PAGE_INCHES, (0.4 * tallest + 1.3) * nrows + 0.6))
    fig.set_label("paired_leads")
    for ax in axes.flat[len(tasks) :]:
        ax.remove()
    for ax, task in zip(axes.flat[: len(tasks)], tasks, strict=False):
        part = rows[rows["task"] == task]
        y = np.arange(len(part))
        value, low, high = (
            part[c].to_numpy(np.float64) for c in ("lead", "lead_ci_low", "lead_ci_high")
        )
        for ahead, color in ((True, _MODEL_COLORS[2]), (False, "0.55")):
            pick = (low > 0) == ahead
            if pick.any():
                ax.errorbar(
                    value[pick],
                    y[pick],
                    xerr=np.vstack([value - low, high - value])[:, pick].clip(min=0),
                    fmt="o",
                    color=color,
                    capsize=4,
                    elinewidth=1.5,
                    label="ahead (CI excludes 0)" if ahead else "not told apart (CI includes 0)",
                )
        ax.axvline(0, color="0.3", linewidth=0.8, linestyle="--")
        ax.set_yticks(y, [f"over {name}" for name in part["other"]])
        ax.set_ylim(len(part) - 0.5, -0.5)
        metric, label, lower = _HEADLINE_METRICS.get(task, (str(part["metric"].iloc[0]), "", False))
        ax.set_title(
            f"{task.capitalize()}: {part['best'].iloc[0]}'s {label or metric} lead", fontsize=9
        )
        ax.set_xlabel(
            "lead (positive: the best is better" + (", lower NME)" if lower else ")"), fontsize=8
        )
        ax.tick_params(labelsize=8)
    handles = {}
    for ax in fig.axes:
        found, texts = ax.get_legend_handles_labels()
        handles.update(zip(texts, found, strict=True))
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=2, fontsize=8)
    fig.suptitle(
        "The best model's lead over each other model, paired 95% bootstrap CI", fontsize=10
    )
    return fig


def plot_image_files(paths: list, titles: list | None = None, ncols: int = 2) -> Figure:
    """Images from files in a grid (annotated predictions, for instance), titles underneath."""
    if not paths:
        return _message_figure("No images to show.")
    nrows = math.ceil(len(paths) / ncols)
    fig, axes = _figure(nrows, ncols, (6.0 * ncols, 4.6 * nrows))
    for ax in axes.flat:
        ax.set_axis_off()
    for i, (ax, path) in enumerate(zip(axes.flat, paths, strict=False)):
        _show_image(ax, str(path))
        ax.set_title(titles[i] if titles else Path(path).name, fontsize=9)
    return fig


# --------------------------------------------------------------------------- Grad-CAM heatmaps

SIGNED_CMAP = "RdBu_r"  # valence and arousal maps: up red, down blue; HEAT_CMAP: explain's
COARSEST_LOCALISING = 3  # a map of fewer cells a side cannot tell one part of a face from another


def map_text(layer: str | None) -> str:
    """The feature map a heatmap comes from, for a title: 'block5_conv3 2x2' (as stored) ->
    'block5_conv3, 2x2 map', with a caveat when it is too coarse to localise anything."""
    if not layer:
        return ""
    found = re.fullmatch(r"(.*\S)\s+(\d+)x(\d+)", str(layer).strip())
    if not found:
        return str(layer)
    name, h, w = found.group(1), int(found.group(2)), int(found.group(3))
    text = f"{name}, {h}x{w} map"
    if min(h, w) < COARSEST_LOCALISING:
        text += ", too coarse to localise within the face"
    return text


def _show_heatmap(ax: Axes, rec: Any, heatmap: Any, signed: bool = False) -> None:
    """A face with a heatmap over it (stretched to the stored image), opacity rising with the
    heat so the face stays visible where the model does not look; landmarks when present."""
    image = _show_image(ax, str(rec["image"]))
    h, w = image.shape[:2]
    heat = np.asarray(heatmap, dtype=np.float32)
    ax.imshow(
        heat,
        cmap=SIGNED_CMAP if signed else HEAT_CMAP,
        vmin=-1.0 if signed else 0.0,
        vmax=1.0,
        alpha=np.clip(np.abs(heat) * 0.75, 0.0, 1.0),
        extent=(-0.5, w - 0.5, h - 0.5, -0.5),
        interpolation="bilinear",
    )
    if "landmarks" in rec:
        draw_landmarks(
            ax, rec["landmarks"], color="white", size=2, linewidth=0.4, alpha=0.6, highlight=False
        )
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def _heat_colorbar(
    fig: Figure, axes: Any, signed: bool, label: str, location: str = "right"
) -> None:
    """One colour scale for a whole grid of heatmaps."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    norm = Normalize(-1.0 if signed else 0.0, 1.0)
    mappable = ScalarMappable(norm=norm, cmap=SIGNED_CMAP if signed else HEAT_CMAP)
    shrink = 0.5 if location == "bottom" else 0.6
    fig.colorbar(
        mappable, ax=list(axes.flat), shrink=shrink, label=label, pad=0.02, location=location
    )


def _share_text(rec: Any) -> str:
    """The heatmap's share on the face, for a title."""
    share = rec.get("on_face")
    return "" if share is None or pd.isna(share) else f", face {float(share):.0%}"


def _where_text(rec: Any) -> str:
    """The heatmap's share in the face region, saying which region: the landmark hull, or the
    centre of an image without landmarks (helpers.evaluation.heatmaps)."""
    share = rec.get("on_face")
    if share is None or pd.isna(share):
        return ""
    where = "in centre" if rec.get("region") == heatmaps.CENTRE else "on face"
    return f"{float(share):.0%} heat {where}"


def plot_gradcam_grid(explained: pd.DataFrame, title: str = "", per_row: int = 5) -> Figure:
    """Grad-CAM of the most confident correct predictions, then the listed confident mistakes
    (heatmap of the class wrongly predicted), up to per_row of each true class, in class order
    four faces a row, so no row is mostly blank; landmarks drawn when known."""
    shown = (
        explained[explained["role"].isin(("correct", "mistake"))] if len(explained) else explained
    )
    if shown.empty or "heatmap" not in shown.columns:
        return _message_figure("No expression predictions to explain.")
    classes = sorted(int(c) for c in shown["expression"].unique())
    cells: list[Any] = []
    hidden = 0
    for c in classes:
        mine = shown[shown["expression"] == c]
        ordered = pd.concat([mine[mine["role"] == "correct"], mine[mine["role"] == "mistake"]])
        hidden += max(0, len(ordered) - per_row)
        cells += [rec for _, rec in ordered.head(per_row).iterrows()]
    ncols = min(4, len(cells))
    nrows = math.ceil(len(cells) / ncols)
    fig, axes = _figure(nrows, ncols, (min(PAGE_INCHES, 1.75 * ncols), 2.0 * nrows + 1.4))
    for ax in axes.flat[len(cells) :]:
        ax.remove()
    for ax, rec in zip(axes.flat, cells, strict=False):
        _bare(ax)
        _show_heatmap(ax, rec, rec["heatmap"])
        true = EXPRESSIONS[int(rec["expression"])]
        what = (
            "correct"
            if rec["role"] == "correct"
            else f"pred {EXPRESSIONS[int(rec['expression_pred'])]}"
        )
        ax.set_title(
            f"true {true}: {what}\np {float(rec['confidence']):.2f}"
            + (f", {_where_text(rec)}" if _where_text(rec) else ""),
            fontsize=7,
            color="black" if rec["role"] == "correct" else "#D55E00",
        )
    _heat_colorbar(fig, axes.flat[: len(cells)], False, "Grad-CAM (predicted class)", "bottom")
    layer = explained.attrs.get("layer")
    labelled = pd.to_numeric(explained["expression"], errors="coerce").dropna().astype(int)
    missing = [EXPRESSIONS[c] for c in sorted(set(labelled)) if 0 <= c < len(EXPRESSIONS)
               and c not in classes]  # fmt: skip
    notes = [f"{hidden} more mistakes not shown" if hidden else "",
             f"no example chosen for {', '.join(missing)}" if missing else ""]  # fmt: skip
    fig.suptitle(
        f"{title + ': ' if title else ''}where the model looks (Grad-CAM of the predicted class"
        f"{', ' + layer if layer else ''}); correct first, confident mistakes in orange"
        + "".join(f"; {n}" for n in notes if n)
        + "\np: the predicted class's probability; heat on face (in centre): the heatmap's share"
        f" inside the landmark hull (the {heatmaps.CENTRE}, without landmarks)",
        fontsize=8,
        wrap=True,
    )
    return fig


def plot_gradcam_panel(explained: pd.DataFrame, title: str = "", n: int = 4) -> Figure:
    """One row for the report: n confident correct predictions and n confident mistakes."""
    if explained.empty or "heatmap" not in explained.columns:
        return _message_figure(
            f"{title + ': ' if title else ''}no heatmaps (notebook 05 writes them)."
        )
    picked = pd.concat(
        [
            explained[explained["role"] == "correct"]
            .sort_values("confidence", ascending=False, kind="stable")
            .head(n),
            explained[explained["role"] == "mistake"].head(n),
        ]
    )
    if picked.empty:
        picked = explained.head(n)
    ncols = min(4, len(picked))
    nrows = math.ceil(len(picked) / ncols)
    fig, axes = _figure(nrows, ncols, (min(PAGE_INCHES, 1.5 * ncols + 1.0), 1.75 * nrows + 0.7))
    fig.set_label(_slug(f"gradcam_{title}"))
    for ax in axes.flat[len(picked) :]:
        ax.remove()
    for ax, (_, rec) in zip(axes.flat, picked.iterrows(), strict=False):
        ax.set_axis_off()
        _show_heatmap(ax, rec, rec["heatmap"])
        label = int(rec["expression"])
        true = EXPRESSIONS[label] if 0 <= label < len(EXPRESSIONS) else "unlabelled"
        pred = EXPRESSIONS[int(rec["expression_pred"])]
        text = f"{pred} {float(rec['confidence']):.2f}" if true == pred else f"{true} -> {pred}"
        ax.set_title(
            text + _share_text(rec), fontsize=7, color="black" if true == pred else "#D55E00"
        )
    _heat_colorbar(fig, axes.flat[: len(picked)], False, "Grad-CAM")
    where = map_text(explained.attrs.get("layer"))
    head = f"{title}: " if title else ""
    fig.suptitle(
        (f"{head}Grad-CAM of {where}\n" if where else head)
        + "correct (black) and mistaken (orange: true -> predicted)",
        fontsize=9,
    )
    return fig


def plot_signed_heatmaps(explained: pd.DataFrame) -> Figure | Note:
    """Valence and arousal Grad-CAM, signed: red pushes the prediction up, blue down; a Note
    for a model without valence or arousal heads."""
    heads = [h for h in ("valence", "arousal") if f"{h}_map" in explained.columns]
    if explained.empty or not heads:
        return Note("The model predicts no valence or arousal: no signed heatmaps.")
    fig, axes = _figure(
        len(heads), len(explained), (2.1 * len(explained) + 1.4, 2.4 * len(heads) + 0.6)
    )
    for r, head in enumerate(heads):
        for ax, (_, rec) in zip(axes[r], explained.iterrows(), strict=False):
            _bare(ax)
            _show_heatmap(ax, rec, rec[f"{head}_map"], signed=True)
            truth = rec.get(head)
            known = truth is not None and not pd.isna(truth)
            ax.set_title(
                f"pred {float(rec[f'{head}_pred']):+.2f}"
                + (f", true {float(truth):+.2f}" if known else ""),
                fontsize=8,
            )
        axes[r, 0].set_ylabel(head, rotation=0, ha="right", va="center")
    _heat_colorbar(fig, axes, True, "pushes the output down (blue) or up (red)")
    fig.suptitle("Valence and arousal: signed Grad-CAM of the regression output", fontsize=10)
    return fig


_CORRUPTION_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#999999")
# Each corruption's line differs in marker and dash too, so no reader depends on colour alone.
_CORRUPTION_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_CORRUPTION_DASHES = ("-", "--", ":", "-.")


def _coincide(lines: list[list[float | None]]) -> bool:
    """Whether every corruption's line is the same (to 1e-9): drawn, they would hide each other."""
    rows = np.array([[np.nan if y is None else y for y in ys] for ys in lines], dtype=np.float64)
    return len(lines) > 1 and bool(np.all(np.nan_to_num(np.ptp(rows, axis=0)) < 1e-9))


def plot_corruptions(block: Mapping[str, Any], title: str = "") -> Figure:
    """Each headline metric against severity, a line per corruption from the clean score at 0
    (helpers.evaluation.corruptions): a line that falls fast is a degradation the model has not
    learned to ignore. Panels keep their metric's scale (metric_limits), lines differ in marker
    and dash as well as colour, and a panel whose lines all coincide says so."""
    results = block.get("results") or {}
    clean = block.get("clean") or {}
    panels = [(head, *_HEADLINE_METRICS[head]) for head in _HEADLINE_METRICS if clean.get(head)]
    if not results or not panels:
        return _message_figure("No corrupted test images were scored.")
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = _figure(nrows, ncols, (PAGE_INCHES, 3.0 * nrows + 1.0), sharex=True)
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    for ax, (head, key, label, lower) in zip(axes.flat, panels, strict=False):
        lines = []
        for index, (name, by_severity) in enumerate(results.items()):
            levels = sorted(by_severity, key=int)
            xs = [0, *(int(s) for s in levels)]
            ys = [clean[head].get(key)]
            ys += [((by_severity[s] or {}).get(head) or {}).get(key) for s in levels]
            lines.append(ys)
            ax.plot(
                xs,
                [np.nan if y is None else y for y in ys],
                color=_CORRUPTION_COLORS[index % len(_CORRUPTION_COLORS)],
                marker=_CORRUPTION_MARKERS[index % len(_CORRUPTION_MARKERS)],
                linestyle=_CORRUPTION_DASHES[index % len(_CORRUPTION_DASHES)],
                label=name.replace("_", " "),
                markersize=4,
            )
        ax.set_ylim(*metric_limits(key, [y for ys in lines for y in ys if y is not None]))
        if _coincide(lines):
            ax.text(
                0.5,
                0.92,
                f"all {len(lines)} corruptions score the same: the lines lie on one another",
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize=7,
                wrap=True,
            )
        ax.set(
            xlabel="severity (0: the same faces, clean)",
            xticks=[0, *(int(s) for s in block.get("severities") or (1, 2, 3))],
        )
        ax.set_title(f"{head} {label}" + (" (lower is better)" if lower else ""), fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=8)
    fig.suptitle(
        f"{title + ': ' if title else ''}the test faces degraded "
        f"(n={block.get('n', 0):,}, one view)",
        fontsize=10,
    )
    return fig


def plot_corruption_comparison(blocks: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Every model's expression macro-F1 (or its first headline metric) per corruption, averaged
    over the severities, beside its clean score: which model holds up where."""
    scored = {model: block for model, block in blocks.items() if block and block.get("results")}
    if not scored:
        return _message_figure("No model was scored on corrupted test images.")
    first = next(iter(scored.values()))
    head = next((h for h in _HEADLINE_METRICS if (first.get("clean") or {}).get(h)), None)
    if head is None:
        return _message_figure("No headline metric was scored on corrupted test images.")
    key, label, lower = _HEADLINE_METRICS[head]
    names = ["clean", *first["results"]]
    width = 0.8 / len(scored)
    fig, axes = _figure(1, 1, (PAGE_INCHES, 4.2))
    fig.set_label("corruption_comparison")
    ax = axes[0, 0]
    for index, (model, block) in enumerate(scored.items()):
        values = [((block.get("clean") or {}).get(head) or {}).get(key)]
        for name in names[1:]:
            by_severity = (block.get("results") or {}).get(name) or {}
            found = [((h or {}).get(head) or {}).get(key) for h in by_severity.values()]
            found = [v for v in found if isinstance(v, (int, float))]
            values.append(float(np.mean(found)) if found else None)
        xs = np.arange(len(names)) + (index - (len(scored) - 1) / 2) * width
        ax.bar(
            xs,
            [np.nan if v is None else v for v in values],
            width,
            color=_MODEL_COLORS[index % len(_MODEL_COLORS)],
            label=model,
        )
    shown = [_clean_label(scored.values()), *(n.replace("_", " ") for n in names[1:])]
    ax.set_xticks(np.arange(len(names)), shown, rotation=30, ha="right", rotation_mode="anchor")
    heights = [p.get_height() for p in ax.patches]
    ax.set_ylim(*metric_limits(key, heights))  # the score's whole range: no stretched noise
    ax.set_ylabel(f"{head} {label}" + (" (lower is better)" if lower else ""), fontsize=9)
    ax.tick_params(labelsize=9)
    ax.set_title(f"{head} {label} on the test faces degraded, mean over severities", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=min(4, len(scored)), fontsize=9)
    return fig


def _clean_label(blocks: Iterable[Mapping[str, Any]]) -> str:
    """The clean bar's name: a sample's clean score (n of `of` test faces) is called the
    sample's, so it is not taken for the headline score on the whole test split."""
    sizes = {(block.get("n"), block.get("of")) for block in blocks}
    if len(sizes) == 1:
        n, total = next(iter(sizes))
        if isinstance(n, int) and isinstance(total, int) and 0 < n < total:
            return f"clean\n({n:,}-face sample)"
    return "clean"


def gradcam_panel_or_note(path: Path, title: str) -> Figure | str:
    """A model's Grad-CAM panel from its heatmaps file, or the line that says why there is none,
    so that the report of a run whose images have moved since (a copied run folder) is still
    made, without that panel."""
    if not path.exists():
        return f"**{title}**: no heatmaps; run notebook 05 for it"
    try:
        return plot_gradcam_panel(heatmaps.load_explained(path), title=title)
    except DataError as error:
        return f"**{title}**: no heatmaps drawn: {error}"
