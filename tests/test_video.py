"""Faces in a video followed over time: tracks, the summary per face, the timeline figure, the
demo clip and the predictor's video outputs."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from helpers.core.errors import ConfigError
from helpers.core.faces import Detector
from helpers.core.labels import EXPRESSIONS
from helpers.data.synthetic import make_clip
from helpers.inference import cli, video
from helpers.inference.predict import predict_images
from helpers.reporting import plots
from test_predict import Stub


def _rows(spec: list[tuple]) -> pd.DataFrame:
    """A predictions table from (file, frame, x, expression) rows: 100 px boxes at y 50;
    x None is a sampled frame without a face, frame None a still photo."""
    rows = []
    for file, frame, x, expression in spec:
        row = {"file": file, "frame": frame, "time": None if frame is None else frame / 10}
        if x is None:
            row["status"] = "no_face"
        else:
            row.update(status="ok", box_x=x, box_y=50, box_w=100, box_h=100)
            row["expression"] = expression
            row.update({f"p_{n}": float(n == expression) for n in EXPRESSIONS})
            row["valence"] = 0.5 if expression == "Happy" else -0.5
            row["arousal"] = 0.2
        rows.append(row)
    table = pd.DataFrame(rows)
    for col in ("frame", "box_x", "box_y", "box_w", "box_h"):
        table[col] = pd.array(table[col], dtype="Int64")
    table["time"] = pd.to_numeric(table["time"]).astype("float64")
    table["track"] = video.track_faces(table)
    return table


def test_box_iou_of_known_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    iou = video.box_iou(boxes, boxes)
    assert np.allclose(np.diag(iou), 1.0)
    assert iou[0, 1] == pytest.approx(50 / 150) and iou[0, 2] == 0.0 and iou[1, 0] == iou[0, 1]
    assert video.box_iou(boxes[:0], boxes).shape == (0, 3)


def test_a_track_follows_its_face_not_the_detectors_order() -> None:
    # two faces drifting towards each other; in frame 10 the detector lists them right first
    table = _rows(
        [
            ("v.mp4", 0, 0, "Happy"),
            ("v.mp4", 0, 300, "Sad"),
            ("v.mp4", 5, 290, "Sad"),
            ("v.mp4", 5, 10, "Happy"),
            ("v.mp4", 10, 280, "Sad"),
            ("v.mp4", 10, 20, "Happy"),
            ("photo.jpg", None, 0, "Happy"),
        ]
    )
    assert table["track"].tolist()[:6] == [0, 1, 1, 0, 1, 0]
    assert table["track"].isna().tolist()[6]  # a still has no track


def test_a_face_unseen_for_a_few_frames_keeps_its_track_and_a_long_absence_starts_a_new_one() -> (
    None
):
    spec = [("v.mp4", 0, 0, "Happy"), ("v.mp4", 1, None, None), ("v.mp4", 2, None, None)]
    spec += [("v.mp4", 3, 5, "Happy"), ("v.mp4", 4, None, None), ("v.mp4", 5, None, None)]
    spec += [("v.mp4", 6, None, None), ("v.mp4", 7, 5, "Happy"), ("w.mp4", 0, 400, "Sad")]
    table = _rows(spec)
    ok = table[table["status"] == "ok"]
    # two sampled frames unseen: kept (TRACK_MAX_GAP); three: a new track; each video from 0
    assert ok["track"].tolist() == [0, 0, 1, 0]
    assert table.loc[table["status"] == "no_face", "track"].isna().all()
    assert video.track_faces(table, max_gap=3)[ok.index].tolist() == [0, 0, 0, 0]
    assert video.track_faces(table, max_gap=1)[ok.index].tolist() == [0, 1, 2, 0]


def test_boxes_that_barely_overlap_are_different_faces() -> None:
    table = _rows([("v.mp4", 0, 0, "Happy"), ("v.mp4", 1, 80, "Happy")])  # IoU 20/180
    assert table["track"].tolist() == [0, 1]
    assert video.track_faces(table, min_iou=0.1).tolist() == [0, 0]


@pytest.mark.parametrize("setting", [{"min_iou": 0.0}, {"min_iou": 1.5}, {"max_gap": -1}])
def test_tracking_settings_that_link_nothing_or_everything_are_refused(setting) -> None:
    with pytest.raises(ConfigError, match=next(iter(setting))):
        video.track_faces(_rows([("v.mp4", 0, 0, "Happy")]), **setting)


def test_the_summary_counts_each_faces_frames_and_shares() -> None:
    spec = [("v.mp4", f, 0, "Happy" if f < 3 else "Sad") for f in range(4)]
    spec += [("v.mp4", f, 300, "Sad") for f in (2, 3)] + [("photo.jpg", None, 0, "Happy")]
    table = _rows(spec)
    summary = video.video_summary(table).set_index("track")
    assert summary.loc[0, ["first_frame", "last_frame", "frames"]].tolist() == [0, 3, 4]
    assert summary.loc[0, ["start", "end", "seen"]].tolist() == [0.0, 0.3, 1.0]
    assert summary.loc[0, "expression"] == "Happy" and summary.loc[0, "share"] == 0.75
    assert summary.loc[0, ["share_Happy", "share_Sad", "share_Fear"]].tolist() == [0.75, 0.25, 0]
    assert summary["switches"].tolist() == [1, 0]
    assert summary.loc[0, "mean_valence"] == pytest.approx(0.25)
    assert summary.loc[1, ["frames", "seen", "expression", "share"]].tolist() == [2, 0.5, "Sad", 1]
    line = video.summary_lines(video.video_summary(table), table)
    assert line == [
        "video v.mp4: 4 frames sampled (0-0.3 s), 2 face(s) followed "
        "(track 0: Happy 75%; track 1: Sad 100%)"
    ]
    table.attrs["notes"] = {"v.mp4": ["decoded 4 of 30 stated frames: cut short or damaged"]}
    (line,) = video.summary_lines(video.video_summary(table), table)
    assert line.endswith("Sad 100%); decoded 4 of 30 stated frames: cut short or damaged")


def test_no_video_face_gives_an_empty_summary_with_its_columns() -> None:
    table = _rows([("photo.jpg", None, 0, "Happy"), ("v.mp4", 0, None, None)])
    summary = video.video_summary(table)
    assert summary.empty and "share_Happy" in summary and "mean_arousal" in summary
    assert video.summary_lines(summary, table) == []


def _bars(ax, name: str):
    """The stacked bars of one class in a timeline panel."""
    return next(c for c in ax.containers if c.get_label() == name)


def test_the_timeline_names_its_file_not_its_path_and_stacks_only_predicted_classes() -> None:
    spec = [("/home/someone/clips/v.mp4", f, 0, ("Happy", "Sad", "Fear")[f % 3]) for f in range(6)]
    table = _rows(spec)
    fig = video.plot_timeline(table, "/home/someone/clips/v.mp4")
    assert fig.get_suptitle() == "v.mp4: the model's predictions over time, per face followed"
    assert plots.figure_title(fig) == fig.get_suptitle()  # the image's alt text
    top = fig.get_axes()[0]
    assert "/home" not in top.get_title(loc="left")
    stacked = [c.get_label() for c in top.containers]  # bottom to top
    assert stacked == [n for n in EXPRESSIONS if n in ("Happy", "Sad", "Fear")]
    legend = [t.get_text() for t in top.get_legend().get_texts()]
    assert legend == stacked[::-1]  # read top-down, as the stack is


def test_a_left_title_is_a_figure_title() -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    fig.subplots().set_title("clip.avi: track 0", loc="left")
    assert plots.figure_title(fig) == "clip.avi: track 0"


def test_the_timeline_draws_each_face_and_leaves_a_gap_where_it_was_unseen() -> None:
    spec = [("v.mp4", f, 0, "Happy") for f in (0, 1, 4, 5)] + [
        ("v.mp4", f, None, None) for f in (2, 3)
    ]
    spec += [("v.mp4", f, 300, "Sad") for f in range(6)]
    table = _rows(spec)
    fig = video.plot_timeline(table, "v.mp4")
    axes = fig.get_axes()
    assert len(axes) == 4  # per face: the stacked probabilities, then valence and arousal
    assert "track 0 (seen in 4 of 6 frames)" in axes[0].get_title(loc="left")
    bars = _bars(axes[0], "Happy")
    assert [b.get_x() + b.get_width() / 2 for b in bars] == pytest.approx([0.0, 0.1, 0.4, 0.5])
    assert [b.get_height() for b in bars] == [1.0] * 4  # nothing drawn at frames 2-3
    assert axes[-1].get_xlabel() == "time (s)"
    valence = axes[1].get_lines()[0].get_ydata()
    assert np.isnan(valence[2:4]).all() and (valence[[0, 1, 4, 5]] == 0.5).all()
    only = video.plot_timeline(table, "v.mp4", tracks=[1])
    assert len(only.get_axes()) == 2
    # a face seen in single frames between gaps, and a one-frame video, are drawn all the same
    lone = _rows([("v.mp4", 0, 0, "Sad"), ("v.mp4", 1, None, None), ("v.mp4", 2, 0, "Sad")])
    sad = _bars(video.plot_timeline(lone, "v.mp4").get_axes()[0], "Sad")
    assert len(sad) == 2 and sad[0].get_width() == pytest.approx(0.1)
    single = video.plot_timeline(_rows([("v.mp4", 0, 0, "Sad")]), "v.mp4")
    assert _bars(single.get_axes()[0], "Sad")[0].get_height() == 1.0
    with pytest.raises(ConfigError, match="no face with track 7"):
        video.plot_timeline(table, "v.mp4", tracks=[7])
    with pytest.raises(ConfigError, match="no video frame of it"):
        video.plot_timeline(table, "other.mp4")


def test_a_video_that_failed_part_way_keeps_its_time_axis() -> None:
    table = _rows([("v.mp4", 0, 0, "Happy"), ("v.mp4", 1, 0, "Happy")])
    broken = pd.concat([table, pd.DataFrame([{"file": "v.mp4", "status": "error"}])])
    broken = broken.astype({"frame": "Int64", "track": "Int64"}).reset_index(drop=True)
    fig = video.plot_timeline(broken, "v.mp4")
    assert fig.get_axes()[-1].get_xlabel() == "time (s)"
    assert "seen in 2 of 2 frames" in fig.get_axes()[0].get_title(loc="left")


def test_labels_of_a_models_own_are_drawn_in_grey() -> None:
    table = _rows([("v.mp4", 0, 0, "Happy")]).rename(columns={"p_Happy": "p_joy"})
    bars = video.plot_timeline(table, "v.mp4").get_axes()[0].containers
    joy = next(c for c in bars if c.get_label() == "joy")
    assert joy[0].get_facecolor()[:3] == pytest.approx((0x77 / 255,) * 3)


def test_one_good_pair_is_not_traded_for_two_weak_ones() -> None:
    # faces A (x 0) and B (x 107.7); next frame: one box overlapping A by 0.31 and B by 0.29,
    # one overlapping A by 0.29 alone. Pairing both weak overlaps (0.58 in all) would beat the
    # one good pair (0.31) and leave both below the threshold: A keeps its face instead.
    from helpers.inference.video import _track_video

    xs = [0.0, 107.71, 52.67, -55.04]
    boxes = np.array([[x, 0.0, 100.0, 100.0] for x in xs])
    assert video.box_iou(boxes[:2], boxes[2:]).round(2).tolist() == [[0.31, 0.29], [0.29, 0.0]]
    ids = _track_video(pd.Series([0, 0, 1, 1]), boxes, np.array([0, 1]), 0.3, 2)
    assert ids.tolist() == [0, 1, 0, 2]


def test_timeline_files_of_videos_with_one_name_do_not_collide() -> None:
    spec = [(name, 0, 0, "Happy") for name in ("a.mp4", "x/a.mp4", "a-2.mp4", "y/a.mp4")]
    names = video.timeline_names(_rows(spec))
    assert names == {
        "a.mp4": "a.png",
        "x/a.mp4": "a-2.png",
        "a-2.mp4": "a-2-2.png",
        "y/a.mp4": "a-3.png",
    }


def test_a_landmarks_only_model_gets_a_summary_but_no_timeline(tmp_path: Path) -> None:
    table = _rows([("v.mp4", 0, 0, "Happy")]).drop(
        columns=["expression", "valence", "arousal", *[f"p_{n}" for n in EXPRESSIONS]]
    )
    assert not video.drawable(table)
    summary = video.video_summary(table)
    assert summary["frames"].tolist() == [1] and "expression" not in summary
    assert video.write_timelines(table, tmp_path / "t") == [] and not (tmp_path / "t").exists()
    written = cli.write_videos(table, summary, tmp_path)
    assert [p.name for p in written] == ["video_summary.csv"]
    assert pd.read_csv(tmp_path / "video_summary.csv")["timeline"].isna().all()


def test_the_demo_clip_is_followed_face_by_face_with_times(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    drawn = make_clip(path, seed=0, segments=2, seconds=1.0, fps=10)
    assert [d[0] for d in drawn] == [0, 0, 1, 1] and drawn[1][1:3] == (1.0, 1.9)
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 20 and capture.get(cv2.CAP_PROP_FPS) == 10
    capture.release()
    table = predict_images(Stub(), path, every=3, progress=False, detector=Detector(min_face=100))
    ok = table[table["status"] == "ok"]
    assert ok["frame"].unique().tolist() == [0, 3, 6, 9, 12, 15, 18]
    assert np.allclose(table["time"], table["frame"].astype(float) / 10)
    # both swaying faces found in every sampled frame, each keeping one track
    assert ok.groupby("track")["box_x"].agg(["size", "min", "max"]).shape == (2, 3)
    assert (ok.groupby("track").size() == 7).all()
    assert (ok.groupby("track")["box_x"].agg(lambda x: x.max() - x.min()) > 0).all()
    with pytest.raises(ConfigError, match="do not fit"):
        make_clip(tmp_path / "big.avi", n_faces=5)
    with pytest.raises(ConfigError, match="segments must be 1-7"):
        make_clip(tmp_path / "long.avi", segments=8)


def test_a_video_without_a_stated_frame_rate_has_no_times(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    make_clip(path, seed=0, segments=1, seconds=0.5, fps=10)
    monkeypatch.setattr("helpers.inference.sources.MAX_FPS", 5.0)  # as if it stated 90,000
    table = predict_images(Stub(), path, every=2, progress=False, detector=Detector(min_face=100))
    assert table["time"].isna().all() and table["track"].notna().all()
    assert video.plot_timeline(table, str(path)).get_axes()[-1].get_xlabel() == "frame"
    assert "(frames 0-4)" in video.summary_lines(video.video_summary(table), table)[0]


def test_the_predictor_writes_each_videos_summary_and_timeline(model_path, tmp_path, capsys):
    clip = make_clip(tmp_path / "in" / "clip.avi", seed=0, segments=2, seconds=1.0, fps=10)
    assert clip
    photo = tmp_path / "in" / "photo.png"
    cv2.imwrite(str(photo), np.zeros((30, 30, 3), np.uint8))
    out = tmp_path / "out"
    args = ["--model", str(model_path), str(tmp_path / "in"), "--min-face", "100", "--quiet"]
    assert cli.main([*args, "--every", "5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"video {tmp_path / 'in' / 'clip.avi'}: 4 frames sampled (0-1.5 s), 2 face(s)" in printed
    summary = pd.read_csv(out / "video_summary.csv")
    assert summary["track"].tolist() == [0, 1] and summary["frames"].tolist() == [4, 4]
    assert summary["timeline"].tolist() == ["timelines/clip.png"] * 2
    assert [p.name for p in (out / "timelines").iterdir()] == ["clip.png"]
    predictions = pd.read_csv(out / "predictions.csv")
    assert predictions.columns[:5].tolist() == ["file", "frame", "time", "face", "track"]
    assert predictions.loc[predictions["file"].str.endswith("photo.png"), "track"].isna().all()
    # one folder, one run: the video outputs count as an earlier run's and go with --overwrite
    assert cli.main([*args, "--out", str(out)]) == 2
    assert "already holds predictions.csv, predictions.json, video_summary.csv, timelines/" in (
        capsys.readouterr().err
    )
    (out / "timelines" / "notes.txt").write_text("kept")
    (out / "timelines" / "old.png").write_bytes(b"an earlier run's")
    (out / "annotated").mkdir()
    (out / "annotated" / "clip.avi").write_bytes(b"an earlier run's")
    assert cli.main([*args, "--out", str(out), "--overwrite", "--every", "100"]) == 0
    assert sorted(p.name for p in (out / "timelines").iterdir()) == ["clip.png", "notes.txt"]
    assert not (out / "annotated" / "clip.avi").exists()
    assert pd.read_csv(out / "video_summary.csv")["frames"].tolist() == [1, 1]


def test_an_out_folder_whose_video_outputs_cannot_be_written_is_refused_first(
    model_path, tmp_path, capsys
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "timelines").write_text("a file where the figures go")
    args = ["--model", str(model_path), str(tmp_path), "--quiet", "--out", str(out)]
    assert cli.main(args) == 2
    assert f"{out / 'timelines'} is a file, not a folder" in capsys.readouterr().err
    (out / "timelines").unlink()
    (out / "video_summary.csv").mkdir()
    assert cli.main(args) == 2
    assert "video_summary.csv is a folder, not a file" in capsys.readouterr().err


def test_without_out_the_terminal_shows_a_videos_time_and_track(model_path, tmp_path, capsys):
    make_clip(tmp_path / "clip.avi", seed=0, segments=1, seconds=0.5, fps=10)
    args = ["--model", str(model_path), str(tmp_path / "clip.avi"), "--min-face", "100"]
    assert cli.main([*args, "--quiet", "--every", "2"]) == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[1].split()
    assert header[:5] == ["file", "frame", "time", "face", "track"]
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((30, 30, 3), 90, np.uint8))
    assert cli.main(["--model", str(model_path), str(photo), "--no-detect", "--quiet"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert "frame" not in header and "time" not in header and "track" not in header


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    from helpers.models.factory import build_model

    path = tmp_path_factory.mktemp("model") / "custom_cnn.keras"
    build_model("custom_cnn", image_size=48, channels=1).save(path)
    return path


def test_fps_placeholders_are_not_times() -> None:
    class Capture:
        def __init__(self, fps: float) -> None:
            self.fps = fps

        def get(self, prop: int) -> float:
            return self.fps

    from helpers.inference.sources import video_fps

    assert video_fps(Capture(25.0)) == 25.0
    assert [video_fps(Capture(v)) for v in (0.0, math.nan, 90_000.0, -1.0)] == [None] * 4


def test_a_faces_label_carries_its_track_in_a_video() -> None:
    from helpers.inference.predict import label_text

    row = {"expression": "Happy", "confidence": 0.934, "track": 2}
    assert label_text(row) == "#2 Happy 0.93"
    assert label_text({**row, "track": pd.NA}) == label_text({**row, "track": None}) == "Happy 0.93"
    assert label_text({"valence": 0.2}) is None


def test_an_annotated_video_holds_every_sampled_frame_at_its_pace(model_path, tmp_path) -> None:
    clip = tmp_path / "clip.avi"
    make_clip(clip, seed=0, segments=2, seconds=1.0, fps=10)
    out = tmp_path / "annotated"
    detector = Detector(min_face=100)
    table = predict_images(
        Stub(), clip, every=4, annotate_dir=out, detector=detector, progress=False
    )
    assert [p.name for p in out.iterdir()] == ["clip.avi"]  # no frame as a photo of its own
    capture = cv2.VideoCapture(str(out / "clip.avi"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == table["frame"].nunique() == 5
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10 / 4)
    ok, first = capture.read()
    capture.release()
    plain = cv2.VideoCapture(str(clip))
    _, original = plain.read()
    plain.release()
    assert ok and first.shape == original.shape  # frames keep their size
    # the boxes are drawn: the annotated frame differs from the original where a face is
    x, y, w = table.loc[0, ["box_x", "box_y", "box_w"]].astype(int)
    edge = np.abs(first[y, x : x + w].astype(int) - original[y, x : x + w].astype(int))
    assert edge.mean() > 40
    explained = tmp_path / "explained"
    predict_images(
        model_path,
        clip,
        every=10,
        annotate_dir=explained,
        detector=detector,
        explain=True,
        progress=False,
    )
    assert sorted(p.name for p in explained.iterdir()) == [
        "clip.avi",
        "clip_f000000_gradcam.jpg",
        "clip_f000010_gradcam.jpg",
    ]


def test_smoothing_averages_each_face_over_the_seconds_around_each_frame() -> None:
    """A face Happy at every sampled frame but one (0.5 s): over a second centred on each
    frame the flicker is gone, its neighbours' means and valence as the window says; another
    face in the same frames, a still photo and 0 seconds are left as they were."""
    spec = [("v.mp4", f, 0, "Sad" if f == 5 else "Happy") for f in range(10)]
    spec += [("v.mp4", f, 300, "Anger") for f in range(10)] + [("photo.jpg", None, 0, "Sad")]
    table = _rows(spec)
    table["confidence"] = 1.0
    smoothed = video.smooth_tracks(table, 1.0)
    first = smoothed[smoothed["track"] == 0].set_index("frame")
    assert (first["expression"] == "Happy").all()
    # each frame's window is the second centred on it, (t - 0.5, t + 0.5]: frame 5's holds
    # frames 1-9 (one Sad face of nine), frame 0's frames 0-5, frame 9's frames 5-9
    assert first["p_Sad"].loc[[5, 0, 9]].tolist() == pytest.approx([1 / 9, 1 / 6, 1 / 5])
    assert first.loc[5, "p_Happy"] == pytest.approx(8 / 9)
    assert first.loc[5, "confidence"] == pytest.approx(8 / 9)
    assert first.loc[5, "valence"] == pytest.approx((8 * 0.5 - 0.5) / 9)
    assert first.loc[5, "arousal"] == pytest.approx(0.2)
    switches = video.video_summary(table)["switches"].tolist()
    assert switches == [2, 0] and video.video_summary(smoothed)["switches"].tolist() == [0, 0]
    other = smoothed[smoothed["track"] == 1]
    assert (other["expression"] == "Anger").all() and (other["p_Anger"] == 1.0).all()
    assert smoothed.loc[smoothed["file"] == "photo.jpg", "expression"].tolist() == ["Sad"]
    assert video.smooth_tracks(table, 0).equals(table)
    assert table.loc[table["frame"] == 5, "expression"].tolist() == ["Sad", "Anger"]  # a copy
    for bad in (-1, float("nan"), "1", True):
        with pytest.raises(ConfigError, match="smooth must be a number of seconds >= 0"):
            video.smooth_tracks(table, bad)  # type: ignore[arg-type]


def test_the_predictor_smooths_videos_when_asked(model_path, tmp_path, monkeypatch, capsys):
    """--smooth S: a video's rows are the unsmoothed ones averaged as smooth_tracks averages
    them (the summary counts the smoothed expressions); a bad value is refused first; a video
    without a frame rate is said to be left as it is."""
    make_clip(tmp_path / "in" / "clip.avi", seed=0, segments=2, seconds=1.0, fps=10)
    args = ["--model", str(model_path), str(tmp_path / "in"), "--min-face", "100", "--quiet"]
    args += ["--every", "2"]
    assert cli.main([*args, "--out", str(tmp_path / "raw")]) == 0
    assert cli.main([*args, "--out", str(tmp_path / "smooth"), "--smooth", "0.6"]) == 0
    assert (
        "videos: each followed face averaged over 0.6 s (--smooth); its" in capsys.readouterr().err
    )
    raw = pd.read_csv(tmp_path / "raw" / "predictions.csv")
    smooth = pd.read_csv(tmp_path / "smooth" / "predictions.csv")
    expected = video.smooth_tracks(raw.astype({"track": "Int64"}), 0.6)
    probabilities = [c for c in raw if c.startswith("p_")] + ["valence", "arousal"]
    assert np.allclose(smooth[probabilities], expected[probabilities])
    assert not np.allclose(smooth[probabilities], raw[probabilities])
    assert smooth["expression"].tolist() == expected["expression"].tolist()
    summary = pd.read_csv(tmp_path / "smooth" / "video_summary.csv")
    shares = smooth.groupby("track")["expression"].agg(
        lambda e: e.value_counts(normalize=True).iloc[0]
    )
    assert summary["share"].tolist() == pytest.approx(shares.tolist())
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((30, 30, 3), 90, np.uint8))
    still = ["--model", str(model_path), str(photo), "--no-detect", "--quiet", "--smooth", "1"]
    assert cli.main(still) == 0 and "--smooth" not in capsys.readouterr().err  # no video
    assert cli.main([*args, "--smooth", "-1"]) == 2
    assert "--smooth must be a number of seconds >= 0, got -1.0" in capsys.readouterr().err
    monkeypatch.setattr("helpers.inference.sources.MAX_FPS", 5.0)  # as if it stated 90,000
    assert cli.main([*args, "--smooth", "0.6"]) == 0
    assert "clip.avi: states no frame rate, so its faces are not smoothed" in (
        capsys.readouterr().err
    )


def test_the_stacked_classes_differ_in_pattern_as_well_as_colour() -> None:
    table = _rows([("v.mp4", f, 0, ("Happy", "Anger", "Sad")[f % 3]) for f in range(6)])
    stack = video.plot_timeline(table, "v.mp4").get_axes()[0].containers
    hatches = [bars[0].get_hatch() or "" for bars in stack]
    assert len(set(hatches)) == len(hatches) == 3
