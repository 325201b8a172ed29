"""Faces in a video followed over time: each face's track across the sampled frames, a summary
per face (how long it was seen, what it mostly showed, its mean valence and arousal) and a
timeline figure of its expression probabilities.

The predictor finds faces in every sampled frame on its own; a face's number in one frame (`face`,
left to right as the detector lists them) says nothing about the next. A track links them: boxes
of consecutive sampled frames are paired by overlap (intersection over union), the pairing that
overlaps most overall (scipy's linear_sum_assignment), and a face unseen for a few sampled frames
(a missed detection, a turned head) keeps its track when it comes back where it was. Faces that
cross each other or leave and return elsewhere start new tracks: the summary says how long each
was seen, so a short one is easy to tell from a person.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from helpers.core.errors import ConfigError, os_reason
from helpers.core.labels import expression_color
from helpers.inference.names import OutputNames

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TRACK_MIN_IOU = 0.3  # boxes of one face two sampled frames apart overlap at least this much
TRACK_MAX_GAP = 2  # sampled frames a face may go unseen and keep its track
TIMELINE_TRACKS = 4  # the longest tracks drawn in a video's timeline figure (a crowd's: the 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every (x, y, w, h) box in a (n, 4) against b (m, 4): (n, m)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _check_tracking(min_iou: float, max_gap: int) -> None:
    """Settings that could link nothing or everything are refused by name."""
    if not 0.0 < min_iou <= 1.0:
        raise ConfigError(f"min_iou must be in (0, 1], got {min_iou!r}")
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0:
        raise ConfigError(f"max_gap must be a whole number of sampled frames >= 0, got {max_gap!r}")


def _track_video(
    frames: pd.Series, boxes: np.ndarray, sampled: np.ndarray, min_iou: float, max_gap: int
) -> np.ndarray:
    """Track ids for one video's faces: frames (their frame index), boxes (n, 4), sampled (every
    frame index the predictor read, with or without a face, in order)."""
    position = {int(f): k for k, f in enumerate(sampled)}
    ids = np.full(len(frames), -1, dtype=np.int64)
    live: list[tuple[int, int, np.ndarray]] = []  # (track id, last position, last box)
    count = 0
    order = np.argsort(frames.to_numpy(dtype=np.int64), kind="stable")
    by_frame = pd.Series(order).groupby(frames.to_numpy(dtype=np.int64)[order], sort=True)
    for frame, rows in by_frame:
        rows = rows.to_numpy()
        here = position[int(frame)]
        live = [t for t in live if here - t[1] - 1 <= max_gap]
        taken: set[int] = set()
        if live:
            overlap = box_iou(np.stack([t[2] for t in live]), boxes[rows])
            overlap[overlap < min_iou] = 0.0  # a pair too far apart never outweighs one that is not
            for i, j in zip(*linear_sum_assignment(-overlap), strict=True):
                if overlap[i, j] >= min_iou:
                    ids[rows[j]] = live[i][0]
                    live[i] = (live[i][0], here, boxes[rows[j]])
                    taken.add(int(j))
        for j, row in enumerate(rows):
            if j not in taken:
                ids[row] = count
                live.append((count, here, boxes[row]))
                count += 1
    return ids


def track_faces(
    table: pd.DataFrame, min_iou: float = TRACK_MIN_IOU, max_gap: int = TRACK_MAX_GAP
) -> pd.Series:
    """Each video face's track id (0, 1, ... per video, in order of first appearance), <NA> for
    stills and rows without a face: so a per-person question ("how long was this face happy?")
    can be asked of a video."""
    _check_tracking(min_iou, max_gap)
    tracks = pd.Series(pd.array([pd.NA] * len(table), dtype="Int64"), index=table.index)
    videos = table[table["frame"].notna()]
    for _, rows in videos.groupby("file", sort=False):
        faces = rows[rows["status"] == "ok"]
        if faces.empty:
            continue
        sampled = np.unique(rows["frame"].to_numpy(dtype=np.int64))
        boxes = faces[["box_x", "box_y", "box_w", "box_h"]].to_numpy(dtype=np.float64)
        ids = _track_video(faces["frame"], boxes, sampled, min_iou, max_gap)
        # number the tracks by first appearance, then left to right within a frame
        first = pd.DataFrame({"id": ids, "frame": faces["frame"].to_numpy(), "x": boxes[:, 0]})
        ranked = first.sort_values(["frame", "x"], kind="stable").drop_duplicates("id")["id"]
        renumber = {int(old): new for new, old in enumerate(ranked)}
        tracks.loc[faces.index] = [renumber[int(i)] for i in ids]
    return tracks


def check_smooth(seconds: float, name: str = "smooth") -> None:
    """A smoothing window that is not a finite number of seconds >= 0 is refused by name."""
    number = not isinstance(seconds, bool) and isinstance(seconds, (int, float, np.number))
    if not number or not np.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{name} must be a number of seconds >= 0, got {seconds!r}")


def smooth_tracks(table: pd.DataFrame, seconds: float) -> pd.DataFrame:
    """A copy whose followed faces' expression probabilities, valence and arousal are each the
    mean over the `seconds` of video centred on the frame (the face's own sampled frames in
    it), the expression and confidence read again from the means: a face's expression is held
    for a second or more, so frame-to-frame flicker is the model's noise, not the person's.
    Faces of a video that states no frame rate are left as they are and its name is listed in
    attrs["unsmoothed"]; 0 seconds changes nothing."""
    check_smooth(seconds)
    out = table.copy()
    out.attrs = dict(table.attrs)
    if seconds == 0:
        return out
    labels = _labels(table)
    columns = [f"p_{name}" for name in labels] + [h for h in ("valence", "arousal") if h in table]
    faces = out[out["track"].notna() & (out["status"] == "ok")]
    timed = faces[faces["time"].notna()]
    out.attrs["unsmoothed"] = sorted(set(faces.loc[faces["time"].isna(), "file"]))
    window = pd.Timedelta(seconds=seconds)
    for _, group in timed.groupby(["file", "track"], sort=False):
        ordered = group.sort_values("time")
        values = ordered[columns].astype("float64")
        values.index = pd.to_timedelta(ordered["time"].to_numpy(), unit="s")
        means = values.rolling(window, center=True, min_periods=1).mean()
        out.loc[ordered.index, columns] = means.to_numpy()
    if labels and len(timed):
        proba = out.loc[timed.index, [f"p_{name}" for name in labels]].to_numpy(np.float64)
        out.loc[timed.index, "expression"] = np.asarray(labels, dtype=object)[proba.argmax(1)]
        out.loc[timed.index, "confidence"] = proba.max(axis=1)
    return out


def _labels(table: pd.DataFrame) -> list[str]:
    """The model's class names, from its probability columns."""
    return [c[2:] for c in table.columns if c.startswith("p_")]


def video_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per tracked face of every video: when it was seen (frame numbers, and seconds where
    the video states its frame rate), in how many sampled frames and in what share of them, the
    expression it showed most, how often its expression changed from one of its frames to the
    next (`switches`: flicker, where a person held one) and each expression's share of its
    frames, its mean valence and arousal; empty (with its columns) when no video face was found."""
    labels = _labels(table)
    heads = [h for h in ("valence", "arousal") if h in table]
    columns = ["file", "track", "first_frame", "last_frame", "start", "end", "frames", "seen"]
    columns += (
        (["expression", "share", "switches"] + [f"share_{n}" for n in labels]) if labels else []
    )
    columns += [f"mean_{h}" for h in heads]
    faces = table[table["track"].notna() & (table["status"] == "ok")]
    sampled_in = table.groupby("file")["frame"].nunique()  # once per video, not per track
    rows = []
    for (name, track), group in faces.groupby(["file", "track"], sort=False):
        sampled = int(sampled_in[name])
        row = {
            "file": name,
            "track": int(track),
            "first_frame": int(group["frame"].min()),
            "last_frame": int(group["frame"].max()),
            "start": group["time"].min(),
            "end": group["time"].max(),
            "frames": len(group),
            "seen": len(group) / sampled,
        }
        if labels:
            shares = group["expression"].value_counts(normalize=True)
            row["expression"], row["share"] = shares.index[0], float(shares.iloc[0])
            shown = group.sort_values("frame")["expression"]
            row["switches"] = int((shown != shown.shift()).sum() - 1)
            row.update({f"share_{n}": float(shares.get(n, 0.0)) for n in labels})
        row.update({f"mean_{h}": float(group[h].mean()) for h in heads})
        rows.append(row)
    summary = pd.DataFrame(rows, columns=columns)
    for col in ("track", "first_frame", "last_frame", "frames", "switches"):
        if col in summary:
            summary[col] = summary[col].astype("int64")
    return summary


def summary_lines(summary: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """One terminal line per video with a face followed: the span its sampled frames cover, the
    tracks and what each mostly showed, and its notes (table.attrs["notes"]: cut short)."""
    lines = []
    for name, group in summary.groupby("file", sort=False):
        rows = table[(table["file"] == name) & table["frame"].notna()]
        end = rows["time"].max()
        span = f"0-{end:.1f} s" if pd.notna(end) else f"frames 0-{rows['frame'].max()}"
        longest = group.sort_values(["frames", "track"], ascending=[False, True]).head(3)
        if "expression" in group:
            faces = [f"track {r.track}: {r.expression} {r.share:.0%}" for r in longest.itertuples()]
        else:
            faces = [f"track {r.track}: {r.frames} frames" for r in longest.itertuples()]
        more = f", {len(group) - len(longest)} more" if len(group) > len(longest) else ""
        notes = "".join(f"; {note}" for note in table.attrs.get("notes", {}).get(name, []))
        lines.append(
            f"video {name}: {rows['frame'].nunique()} frames sampled ({span}), "
            f"{len(group)} face(s) followed ({'; '.join(faces)}{more}){notes}"
        )
    return lines


def drawable(table: pd.DataFrame) -> bool:
    """Whether the predictions hold anything a timeline draws (a landmarks-only model's do not)."""
    return bool(_labels(table)) or any(h in table for h in ("valence", "arousal"))


def _axis_of_time(rows: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Seconds where the video states its frame rate, else frame numbers."""
    if rows["time"].notna().all():
        return rows["time"].to_numpy(dtype=np.float64), "time (s)"
    return rows["frame"].to_numpy(dtype=np.float64), "frame"


def _widths(x: np.ndarray) -> np.ndarray:
    """Each sampled frame's share of the time axis: from the midpoint before it to the one after,
    so a face seen in one frame is drawn and a frame it was missed in is a gap of one interval."""
    if len(x) < 2:
        return np.ones_like(x)
    edges = np.concatenate([[x[0] - (x[1] - x[0]) / 2], (x[:-1] + x[1:]) / 2])
    edges = np.append(edges, x[-1] + (x[-1] - x[-2]) / 2)
    return np.diff(edges)


def _longest(table: pd.DataFrame, name: str, most: int) -> list[int]:
    """The video's `most` longest tracks, longest first (the lower id on a tie)."""
    faces = table[(table["file"] == name) & table["track"].notna()]
    counts = faces.groupby("track").size()
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [int(t) for t, _ in ranked[:most]]


# One pattern per class in a stack, so neighbouring classes of like colour stay apart.
_HATCHES = ("", "///", "...", "xxx", "\\\\\\", "+++", "ooo", "---")


def _predicted_labels(table: pd.DataFrame) -> list[str]:
    """The classes the model gives some probability: a class it never predicts (Contempt of a
    7-class FER-2013 model) is no part of its stack nor its legend."""
    return [n for n in _labels(table) if (table[f"p_{n}"].fillna(0.0) > 0).any()]


def _probability_panel(ax: Axes, x: np.ndarray, on: pd.DataFrame, labels: list[str]) -> None:
    """The track's expression probabilities as stacked bars, one per sampled frame it was seen
    in."""
    probs = on[[f"p_{n}" for n in labels]].to_numpy(dtype=np.float64)
    seen = ~np.isnan(probs).any(axis=1)
    width, bottom = _widths(x)[seen], np.zeros(int(seen.sum()))
    for j, label in enumerate(labels):
        ax.bar(
            x[seen],
            probs[seen, j],
            width,
            bottom,
            color=expression_color(label),
            label=label,
            linewidth=0,
            hatch=_HATCHES[j % len(_HATCHES)],  # told apart without colour too
            edgecolor="white",
        )
        bottom = bottom + probs[seen, j]
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")


def _affect_panel(ax: Axes, x: np.ndarray, on: pd.DataFrame, heads: list[str]) -> None:
    """The track's valence and arousal as lines, broken where it was not seen."""
    for head, style in zip(heads, ("-", "--"), strict=False):
        values = on[head].to_numpy(dtype=np.float64)
        ax.plot(x, values, style, label=head, color="black", marker=".", markersize=4)
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_ylabel("valence, arousal")


def plot_timeline(table: pd.DataFrame, name: str, tracks: Sequence[int] | None = None) -> Figure:
    """A video's timeline: for each track drawn (the TIMELINE_TRACKS longest by default, in their
    order), its expression probabilities stacked over time, and beneath them its valence and
    arousal where the model has them; a frame where the face was not seen is a gap."""
    from matplotlib.figure import Figure

    rows = table[(table["file"] == name) & table["frame"].notna()]  # an error row has no frame
    if rows.empty:
        raise ConfigError(f"{name}: no video frame of it in the predictions")
    chosen = list(tracks) if tracks is not None else sorted(_longest(table, name, TIMELINE_TRACKS))
    if not chosen:
        raise ConfigError(f"{name}: no face was followed in it (no tracked rows)")
    if not drawable(table):
        raise ConfigError("the predictions hold no expression, valence or arousal to draw")
    heads = [h for h in ("valence", "arousal") if h in table]
    labels = _predicted_labels(table)
    panels = int(bool(labels)) + int(bool(heads))
    sampled = rows.drop_duplicates("frame").sort_values("frame")[["frame", "time"]]
    x, xlabel = _axis_of_time(sampled)
    fig = Figure(figsize=(9, 2.2 * panels * len(chosen) + 0.6), layout="constrained")
    axes = fig.subplots(panels * len(chosen), 1, sharex=True, squeeze=False)[:, 0]
    for k, track in enumerate(chosen):
        face = rows[rows["track"] == track].set_index("frame")
        if face.empty:
            raise ConfigError(f"{name}: no face with track {track}")
        on = sampled.set_index("frame").join(face.drop(columns="time"), how="left")
        first, second = axes[panels * k], axes[panels * k + panels - 1]
        if labels:
            _probability_panel(first, x, on, labels)
        if heads:
            _affect_panel(second, x, on, heads)
        title = f"track {track} (seen in {len(face)} of {len(sampled)} frames)"
        first.set_title(title, loc="left")
        if k == 0:
            for ax in {first, second}:
                handles, names = ax.get_legend_handles_labels()
                if ax is first and labels:  # top of the stack first, as the bars are drawn
                    handles, names = handles[::-1], names[::-1]
                ax.legend(
                    handles, names, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small"
                )
    axes[-1].set_xlabel(xlabel)
    fig.suptitle(f"{Path(str(name)).name}: the model's predictions over time, per face followed")
    return fig


def timeline_names(table: pd.DataFrame) -> dict[str, str]:
    """Each video with a track, and its figure's file name: the video's stem, with -2, -3...
    where another video of the run has it (x/a.mp4 beside a.mp4 and a-2.mp4 too)."""
    names = OutputNames()
    return {
        str(video): f"{names.claim(Path(str(video)).stem or 'video', '.png')}.png"
        for video in table.loc[table["track"].notna(), "file"].unique()
    }


def write_timelines(table: pd.DataFrame, folder: str | os.PathLike) -> list[Path]:
    """Each video's timeline figure in folder, named by timeline_names (only videos with a face
    followed, and only when the model predicts something a timeline draws); a figure that
    cannot be written is a ConfigError naming it."""
    if not drawable(table):
        return []
    written: list[Path] = []
    for video, name in timeline_names(table).items():
        target = Path(folder) / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            plot_timeline(table, video).savefig(target, dpi=100)
        except OSError as error:
            raise ConfigError(f"{target}: cannot be written ({os_reason(error)})") from error
        written.append(target)
    return written
