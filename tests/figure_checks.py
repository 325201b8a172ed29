"""Shared by the figure tests (tests/ is on sys.path for them): does a figure really draw?"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure


def check_figure(fig: Figure, n_axes: int | None = None) -> Figure:
    """A Figure that draws to PNG (catches draw-time errors), with the expected axes count."""
    assert isinstance(fig, Figure)
    if n_axes is not None:
        assert len(fig.axes) == n_axes
    fig.savefig(io.BytesIO(), format="png", dpi=40)
    return fig
