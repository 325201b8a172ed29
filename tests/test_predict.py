"""The predictor: faces found in scenes, batched, one row per face, bad files reported not fatal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.core import faces as detect
from helpers.core.errors import ConfigError
from helpers.core.faces import Detector, crop_face
from helpers.core.labels import EXPRESSIONS
from helpers.core.landmarks import N_POINTS, from_model_output
from helpers.core.preprocess import to_model_input
from helpers.data.synthetic import render_face, sample_face_params
from helpers.inference.cli import main
from helpers.inference.predict import (
    annotate,
    evaluated_tta,
    model_card,
    note_lines,
    outside_note,
    predict_images,
    summarize,
    training_margin,
)
from helpers.inference.runtime import open_model

FACE_PX = 160
# Demo faces the Haar cascade finds at 160 px, upright, in a noisy scene (checked by
# test_the_cascade_fires_on_these_demo_faces). About 3 in 4 rendered faces are found.
FACE_SEEDS = (0, 2, 3)


def _face(seed: int, size: int = FACE_PX) -> np.ndarray:
    """An upright, unoccluded demo face: the cascade is a frontal-face detector."""
    rng = np.random.default_rng(seed)
    p = sample_face_params(rng, int(rng.integers(len(EXPRESSIONS))), size)
    return render_face(replace(p, roll=0.0, occluder=None), size)[0]


def _scene(
    seeds: tuple[int, ...],
    shape: tuple[int, int] = (480, 640),
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Faces pasted left to right into a blurred-noise scene, and where each was pasted."""
    rng = np.random.default_rng(123)
    scene = cv2.GaussianBlur(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), (0, 0), 3)
    placed = []
    for j, seed in enumerate(seeds):
        x, y = 20 + j * (FACE_PX + 40), 100
        scene[y : y + FACE_PX, x : x + FACE_PX] = _face(seed)
        placed.append((x, y, FACE_PX, FACE_PX))
    return scene, placed


def _inside(row: pd.Series, placed: tuple[int, int, int, int]) -> bool:
    """The detected box's centre lies in the pasted face, and the box is face-sized."""
    x, y, w, h = placed
    cx, cy = row["box_x"] + row["box_w"] / 2, row["box_y"] + row["box_h"] / 2
    return x <= cx <= x + w and y <= cy <= y + h and 0.4 * w <= row["box_w"] <= 1.2 * w


def _save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


class Stub:
    """A Backend without TensorFlow: fixed outputs, records the batch sizes it was called with."""

    def __init__(self, size: int = 48, channels: int = 1):
        self.metadata = {
            "name": "stub",
            "image_size": size,
            "channels": channels,
            "heads": ["expression", "valence", "arousal", "landmarks"],
            "labels": list(EXPRESSIONS),
        }
        self.batches: list[tuple[int, ...]] = []

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.batches.append(images.shape)
        n = len(images)
        proba = np.full((n, 8), 0.05)
        proba[:, 1] = 0.65  # Happy
        return {
            "expression": proba,
            "valence": np.full((n, 1), 0.5),
            "arousal": np.full((n, 1), -0.25),
            "landmarks": np.full((n, 136), 0.5),
        }


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    from helpers.models.factory import build_model

    path = tmp_path_factory.mktemp("model") / "custom_cnn.keras"
    build_model("custom_cnn", image_size=48, channels=1).save(path)
    return path


@pytest.fixture(scope="module")
def model(model_path):
    return open_model(model_path)


# --------------------------------------------------------------------------- detection


def test_the_cascade_fires_on_these_demo_faces():
    for seed in FACE_SEEDS:
        scene, placed = _scene((seed,))
        boxes = Detector()(scene)
        assert len(boxes) == 1, seed
        row = dict(zip(("box_x", "box_y", "box_w", "box_h"), boxes[0], strict=False))
        assert _inside(pd.Series(row), placed[0]), (seed, boxes)


def test_predicting_says_what_it_starts_in_the_terminal(model_path, tmp_path, monkeypatch):
    """Loading a model and scoring faces take a minute on a busy CPU: notebook 07 says so."""
    from helpers.core import progress

    lines = tmp_path / "lines"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(lines))
    scene, _ = _scene(FACE_SEEDS[:1])
    predict_images(model_path, [scene], progress=False)
    assert not lines.exists()
    predict_images(model_path, [scene])
    assert lines.read_text().splitlines()[0] == (
        "predicting with custom_cnn.keras: loading it, then finding and scoring the faces ..."
    )


def test_a_pasted_face_comes_back_as_one_row_with_a_class(model):
    scene, placed = _scene(FACE_SEEDS[:1])
    table = predict_images(model, [scene], progress=False)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["status"] == "ok" and _inside(row, placed[0])
    assert row["expression"] in EXPRESSIONS and row["file"] == "<array 0>"
    probs = row[[f"p_{name}" for name in EXPRESSIONS]].to_numpy(dtype=float)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert row["confidence"] == pytest.approx(probs.max())
    assert -1 <= row["valence"] <= 1 and -1 <= row["arousal"] <= 1
    points = np.asarray(row["landmarks"])
    assert points.shape == (N_POINTS, 2)
    # sigmoid outputs lie in the crop, which surrounds the detected box
    assert np.all(points[:, 0] > row["box_x"] - row["box_w"]) and np.all(
        points[:, 0] < row["box_x"] + 2 * row["box_w"]
    )


def test_every_face_of_a_group_photo_gets_a_row_left_to_right(model, tmp_path):
    scene, placed = _scene(FACE_SEEDS)
    path = _save(tmp_path / "group.png", scene)
    table = predict_images(model, path, progress=False)
    assert list(table["face"]) == [0, 1, 2]
    assert table["frame"].isna().all() and (table["file"] == str(path)).all()
    for (_, row), where in zip(table.iterrows(), placed, strict=False):
        assert _inside(row, where)


def test_an_image_without_a_face_is_one_no_face_row(tmp_path):
    blank = _save(tmp_path / "wall.png", np.full((200, 300, 3), 128, np.uint8))
    table = predict_images(Stub(), blank, progress=False)
    assert list(table["status"]) == ["no_face"] and table["expression"].isna().all()
    assert table.attrs["summary"] == {
        "files": 1,
        "with_faces": 0,
        "without_faces": 1,
        "errors": 0,
        "faces": 0,
        "read_in_part": 0,
    }


def test_nested_duplicate_boxes_are_dropped(monkeypatch):
    class Cascade:
        def detectMultiScale(self, *args, **kwargs):
            return np.array([[10, 10, 100, 100], [30, 30, 50, 50], [200, 20, 60, 60]])

    monkeypatch.setattr(detect, "_cascade", lambda: Cascade())
    boxes = Detector()(np.zeros((300, 300, 3), np.uint8))
    assert boxes.tolist() == [[10, 10, 100, 100], [200, 20, 60, 60]]


def test_large_images_are_searched_downscaled_and_boxes_scaled_back(monkeypatch):
    seen = {}

    class Cascade:
        def detectMultiScale(self, gray, scaleFactor, minNeighbors, minSize):
            seen["shape"], seen["min"] = gray.shape, minSize
            return np.array([[100, 50, 40, 40]])

    monkeypatch.setattr(detect, "_cascade", lambda: Cascade())
    boxes = Detector(max_side=500, min_face=40)(np.zeros((1000, 2000, 3), np.uint8))
    assert seen == {"shape": (250, 500), "min": (10, 10)}
    assert boxes.tolist() == [[400, 200, 160, 160]]


@pytest.mark.parametrize(
    "kwargs", [{"scale_factor": 1.0}, {"min_neighbors": -1}, {"min_face": 0}, {"min_face": 2.5}]
)
def test_bad_detector_settings_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        Detector(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"margin": -0.1}, {"batch_size": 0}, {"every": 0}, {"backend": "onnx"}]
)
def test_bad_settings_fail_before_any_work(kwargs, tmp_path):
    with pytest.raises(ConfigError):
        predict_images(Stub(), tmp_path, progress=False, **kwargs)


def test_what_is_not_a_model_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="expected a Keras model"):
        predict_images(object(), tmp_path, progress=False)
    with pytest.raises(ConfigError, match="backend='tflite'"):
        open_model(tmp_path / "model.tflite", backend="keras")


# --------------------------------------------------------------------------- preprocessing


def test_crop_is_square_with_margin_and_replicates_edges_outside_the_image():
    image = np.arange(100 * 100 * 3, dtype=np.uint8).reshape(100, 100, 3)
    crop, region = crop_face(image, (0, 10, 40, 40), margin=0.25)
    assert region == (-10, 0, 60, 60) and crop.shape == (60, 60, 3)
    np.testing.assert_array_equal(crop[:, 10:], image[0:60, 0:50])
    np.testing.assert_array_equal(crop[:, 0], image[0:60, 0])  # replicated left edge


def test_model_input_matches_training_conversion(tmp_path):
    from helpers.core.preprocess import decode_for_model

    rgb = np.random.default_rng(0).integers(0, 256, (100, 80, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "frame.png")
    for size, channels in ((48, 1), (64, 3), (96, 3)):  # shrink >= 2x, shrink < 2x, enlarge
        got = to_model_input(rgb, size, channels)
        assert got.dtype == np.float32 and got.shape == (size, size, channels)
        np.testing.assert_array_equal(
            got, decode_for_model(str(tmp_path / "frame.png"), size, channels)[0]
        )
    expected = cv2.resize(
        np.asarray(Image.fromarray(rgb).convert("L")), (40, 40), interpolation=cv2.INTER_AREA
    )  # 80 -> 40: a 2x shrink averages
    np.testing.assert_array_equal(to_model_input(rgb, 40, 1)[..., 0], expected)
    assert to_model_input(rgb[..., 0], 96, 3).shape == (96, 96, 3)  # gray in, RGB model


def test_landmarks_map_back_to_the_original_image_exactly():
    rng = np.random.default_rng(1)
    truth = rng.uniform(40, 120, (N_POINTS, 2))
    region, size = (25, -7, 130, 130), 48
    # forward, as training does: into the crop, pixel-centre resize to size, divide by size
    normalised = ((truth - region[:2] + 0.5) * size / region[2] - 0.5) / size
    np.testing.assert_allclose(
        from_model_output(normalised, region[2], region[3], size, region[:2])[0], truth, atol=1e-9
    )


def test_no_detect_uses_the_whole_image_as_one_face(tmp_path):
    stub = Stub()
    for i in range(3):
        _save(tmp_path / f"fer_{i}.png", np.full((48, 60), 30 * i, np.uint8))
    table = predict_images(stub, tmp_path, detect=False, progress=False)
    assert len(table) == 3 and (table["status"] == "ok").all()
    assert table[["box_x", "box_y", "box_w", "box_h"]].values.tolist() == [[0, 0, 60, 48]] * 3
    assert (table["expression"] == "Happy").all() and (table["confidence"] == 0.65).all()
    # landmark 0.5 of the model input is the centre of the image, pixel-centre convention
    pts = np.asarray(table["landmarks"].iloc[0])
    expected = [(0.5 * 48 + 0.5) * 60 / 48 - 0.5, (0.5 * 48 + 0.5) * 48 / 48 - 0.5]
    np.testing.assert_allclose(pts, [expected] * N_POINTS, atol=0.005)  # stored to 0.01 px


def test_faces_from_many_images_share_batches(tmp_path):
    stub = Stub()
    for i in range(5):
        _save(tmp_path / f"{i}.png", np.full((20, 20), 100, np.uint8))
    predict_images(stub, tmp_path, detect=False, batch_size=4, progress=False)
    assert [shape[0] for shape in stub.batches] == [4, 1]
    assert stub.batches[0][1:] == (48, 48, 1)


# --------------------------------------------------------------------------- bad inputs


def test_bad_files_in_a_folder_are_reported_and_skipped(tmp_path):
    folder = tmp_path / "photos"
    good = _save(folder / "a_good.png", np.full((40, 40, 3), 90, np.uint8))
    jpeg = folder / "b_truncated.jpg"
    _save(jpeg, np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    (folder / "c_text.jpg").write_text("not a picture")
    (folder / "sub").mkdir()
    (folder / "sub" / "d_empty.png").write_bytes(b"")
    Image.new("1", (8000, 8000)).save(folder / "e_huge.png")  # 64 Mpx: over the bomb guard
    (folder / "notes.txt").write_text("ignored: not an image extension")
    table = predict_images(Stub(), folder, detect=False, progress=False)
    by_file = table.set_index("file")
    assert list(by_file.index) == [
        str(good),
        str(jpeg),
        str(folder / "c_text.jpg"),
        str(folder / "e_huge.png"),
        str(folder / "sub" / "d_empty.png"),
    ]
    assert by_file.loc[str(good), "status"] == "ok"
    errors = by_file[by_file["status"] == "error"]["error"]
    assert len(errors) == 4
    for name, problem in (
        ("b_truncated", "truncated"),
        ("c_text", "not an image"),
        ("d_empty", "0 bytes"),
        ("e_huge", "over the limit"),
    ):
        (message,) = [e for f, e in errors.items() if name in f]
        assert name in message and problem in message
    assert summarize(table) == {
        "files": 5,
        "with_faces": 1,
        "without_faces": 0,
        "errors": 4,
        "faces": 1,
    }


def test_missing_inputs_and_empty_folders_are_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    table = predict_images(Stub(), [tmp_path / "nope.jpg", tmp_path / "empty"], progress=False)
    assert list(table["status"]) == ["error", "error"]
    assert "not found" in table["error"].iloc[0] and "no image or video" in table["error"].iloc[1]


def test_arrays_batches_and_zip_members_are_inputs_too(tmp_path):
    import zipfile

    from helpers.core.images import make_uri

    buffer = tmp_path / "faces.zip"
    png = _save(tmp_path / "face.png", np.full((30, 30, 3), 50, np.uint8)).read_bytes()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("images/a.png", png)
    batch = np.zeros((2, 30, 30, 3), np.uint8)
    table = predict_images(Stub(), batch, detect=False, progress=False)
    assert list(table["file"]) == ["<array 0>", "<array 1>"]
    uri = make_uri(buffer, "images/a.png")
    missing = make_uri(buffer, "images/nope.png")
    table = predict_images(Stub(), [uri, missing], detect=False, progress=False)
    assert list(table["status"]) == ["ok", "error"] and "nope.png" in table["error"].iloc[1]


# --------------------------------------------------------------------------- video


def _video(path: Path, frames: int, face: np.ndarray | None = None) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((240, 320, 3), 20 + 5 * i, np.uint8)
        if face is not None:
            frame[40:200, 80:240] = face[..., ::-1]
        writer.write(frame)
    writer.release()
    return path


def test_video_gives_rows_for_every_nth_frame(tmp_path):
    path = _video(tmp_path / "clip.avi", 12)
    table = predict_images(Stub(), path, detect=False, every=5, progress=False)
    assert table["frame"].tolist() == [0, 5, 10] and (table["status"] == "ok").all()
    assert table[["box_w", "box_h"]].values.tolist() == [[320, 240]] * 3


def test_video_faces_are_detected_per_frame(model, tmp_path):
    path = _video(tmp_path / "clip.avi", 6, face=_face(FACE_SEEDS[0]))
    table = predict_images(model, path, every=3, progress=False)
    assert table["frame"].tolist() == [0, 3] and (table["status"] == "ok").all()


def test_a_still_is_opened_once_for_its_exif_orientation_and_its_note(tmp_path, monkeypatch):
    # One header read gives both the EXIF orientation that turns a photo upright and the page
    # count that says a multi-page file was read by its first page.
    import types

    from helpers.inference import sources

    stored = Image.fromarray(np.zeros((40, 80, 3), np.uint8))
    exif = stored.getexif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    stored.save(tmp_path / "pages.tiff", save_all=True, append_images=[stored])
    opened: list[str] = []

    def counting_open(fp, *args, **kwargs):
        opened.append(str(fp))
        return Image.open(fp, *args, **kwargs)

    monkeypatch.setattr(sources, "Image", types.SimpleNamespace(open=counting_open))
    for name, shape, note in (
        ("phone.jpg", (80, 40), []),  # turned upright
        ("pages.tiff", (40, 80), ["holds 2 pages: the first alone was read"]),
    ):
        notes: list[str] = []
        ((_, _, shown),) = sources.iter_frames(
            sources.Source(str(tmp_path / name), "image"), notes=notes
        )
        assert shown.shape[:2] == shape and notes == note
    assert opened == [str(tmp_path / "phone.jpg"), str(tmp_path / "pages.tiff")]


def test_a_broken_video_is_an_error_row_not_a_crash(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 1000)
    _save(tmp_path / "ok.png", np.zeros((30, 30, 3), np.uint8))
    table = predict_images(Stub(), tmp_path, detect=False, progress=False)
    assert table.set_index("file")["status"].to_dict() == {
        str(tmp_path / "broken.mp4"): "error",
        str(tmp_path / "ok.png"): "ok",
    }


def test_inputs_read_in_part_say_so(model_path, tmp_path, capsys):
    folder = tmp_path / "in"
    whole = _video(tmp_path / "whole.avi", 30).read_bytes()
    (folder / "cut.avi").parent.mkdir()
    (folder / "cut.avi").write_bytes(whole[: len(whole) // 3])  # the first third of its frames
    scene = Image.fromarray(np.full((40, 40, 3), 90, np.uint8))
    pages = [Image.fromarray(np.full((40, 40, 3), 200, np.uint8))]
    scene.save(folder / "pages.tiff", save_all=True, append_images=pages)
    scene.save(folder / "anim.gif", save_all=True, append_images=pages, duration=100)
    scene.save(folder / "plain.png")
    table = predict_images(Stub(), folder, detect=False, every=5, progress=False)
    assert (table["status"] == "ok").all()
    (decoded,) = table.attrs["notes"][str(folder / "cut.avi")]
    assert re.fullmatch(
        r"decoded ([1-9]|1\d|2[0-8]) of 30 stated frames: cut short or damaged", decoded
    )
    assert table.attrs["notes"][str(folder / "pages.tiff")] == [
        "holds 2 pages: the first alone was read"
    ]
    assert table.attrs["notes"][str(folder / "anim.gif")] == [
        "holds 2 frames: the first alone was read"
    ]
    assert str(folder / "plain.png") not in table.attrs["notes"]
    assert table.attrs["summary"]["read_in_part"] == 3
    code = main(["--model", str(model_path), str(folder), "--no-detect", "--quiet", "--every", "5"])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"note: {folder / 'cut.avi'}: {decoded}" in err
    assert f"note: {folder / 'anim.gif'}: holds 2 frames" in err
    assert "; 3 read in part (see the notes)" in out


# --------------------------------------------------------------------------- annotation


def test_annotate_draws_on_a_copy(model):
    scene, _ = _scene(FACE_SEEDS[:1])
    before = scene.copy()
    table = predict_images(model, [scene], progress=False)
    drawn = annotate(scene, table)
    np.testing.assert_array_equal(scene, before)
    assert drawn.shape == scene.shape and drawn.dtype == np.uint8
    x, y, w, h = table.loc[0, ["box_x", "box_y", "box_w", "box_h"]].astype(int)
    assert not np.array_equal(drawn[y : y + h, x : x + w], scene[y : y + h, x : x + w])
    np.testing.assert_array_equal(drawn[-40:, -40:], scene[-40:, -40:])  # far from the face


def test_annotated_files_never_overwrite_one_another_and_each_row_names_its_own(tmp_path):
    """Inputs whose stems meet (a-2.jpg, a.jpg, a.png; A.bmp, which a case-blind disk takes
    for a.jpg; IMG_0001.jpg in two folders; clip.mp4 beside clip.avi and clip-2.avi) each get
    their own annotated file, and each row's `annotated` names the file its face is in."""
    folder, out = tmp_path / "in", tmp_path / "out" / "annotated"
    sides = {"a-2.jpg": 500, "a.jpg": 510, "a.png": 520, "A.bmp": 530}
    sides |= {"2023/IMG_0001.jpg": 540, "2024/IMG_0001.jpg": 550}
    for name, side in sides.items():
        _save(folder / name, np.full((side, side, 3), 90, np.uint8))
    for name in ("clip-2.avi", "clip.avi", "clip.mp4"):
        _video(folder / name, 3)
    table = predict_images(Stub(), folder, detect=False, progress=False, annotate_dir=out)
    assert len(list(out.iterdir())) == table["file"].nunique() == 9
    assert list(table.columns)[-1] == "annotated"
    named = table.groupby("file")["annotated"].agg(set)
    assert all(len(files) == 1 for files in named)
    assert len({next(iter(f)) for f in named}) == 9
    for name, side in sides.items():
        (shown,) = named[str(folder / name)]
        assert shown.startswith("annotated/")
        assert Image.open(out.parent / shown).size == (side, side)
    assert named[str(folder / "clip.mp4")] == {"annotated/clip-3.avi"}
    assert "annotated" not in predict_images(Stub(), folder, detect=False, progress=False)


# --------------------------------------------------------------------------- CLI


def test_cli_writes_csv_json_and_annotated_images(model_path, tmp_path, capsys):
    inputs = tmp_path / "in"
    _save(inputs / "group.png", _scene(FACE_SEEDS)[0])
    _save(inputs / "wall.png", np.full((100, 100, 3), 200, np.uint8))
    (inputs / "bad.jpg").write_text("nope")
    out = tmp_path / "out"
    code = main(
        ["--model", str(model_path), str(inputs), "--out", str(out), "--annotate", "--quiet"]
    )
    printed = capsys.readouterr()
    assert code == 0
    csv = pd.read_csv(out / "predictions.csv")
    assert csv["status"].tolist() == ["error", "ok", "ok", "ok", "no_face"]
    assert len(json.loads(csv["landmarks"].iloc[1])) == N_POINTS
    rows = json.loads((out / "predictions.json").read_text())
    assert [r["status"] for r in rows] == csv["status"].tolist()
    assert rows[1]["frame"] is None and rows[1]["expression"] in EXPRESSIONS
    assert len(rows[1]["landmarks"]) == N_POINTS and rows[0]["landmarks"] is None
    assert sorted(p.name for p in (out / "annotated").iterdir()) == ["group.jpg"]
    assert "bad.jpg" in printed.err and "not an image" in printed.err
    assert "wall.png" in printed.err
    assert printed.out.strip().splitlines()[-1] == (
        "3 inputs: 1 with faces (3 faces), 1 without a face, 1 could not be read"
    )


def test_cli_exits_1_when_nothing_could_be_read(model_path, tmp_path, capsys):
    (tmp_path / "bad.jpg").write_text("nope")
    assert main(["--model", str(model_path), str(tmp_path / "bad.jpg"), "--quiet"]) == 1
    assert "bad.jpg" in capsys.readouterr().err


@pytest.mark.parametrize("content", [None, b"not a zip"])
def test_cli_exits_2_when_the_model_cannot_be_loaded(tmp_path, capsys, content):
    path = tmp_path / "model.keras"
    if content is not None:
        path.write_bytes(content)
    image = _save(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8))
    assert main(["--model", str(path), str(image)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


def test_module_entry_point_reports_without_a_traceback(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.predict",
            "--model",
            str(tmp_path / "missing.keras"),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2
    assert "missing.keras: model file not found" in done.stderr
    assert "Traceback" not in done.stderr


def test_demo_scenes_are_found_face_by_face(tmp_path):
    """synthetic.make_scene feeds the predictor demo (notebook 07): every pasted face is found."""
    from helpers.data.synthetic import make_scene

    scene, placed = make_scene(seed=0, n_faces=3)
    assert scene.shape == (480, 640, 3) and len(placed) == 3
    boxes = Detector()(scene)
    for x, y, w, h, _ in placed:
        assert any(
            x <= bx + bw / 2 <= x + w and y <= by + bh / 2 <= y + h for bx, by, bw, bh in boxes
        )


def test_cli_tta_flip_averages_each_face_with_its_mirror(model_path, tmp_path):
    """--tta flip: a face and its mirror image get the same prediction; without, they differ."""
    rng = np.random.default_rng(5)
    face = rng.integers(0, 255, (48, 48, 3), np.uint8)
    _save(tmp_path / "in" / "a.png", face)
    _save(tmp_path / "in" / "b.png", face[:, ::-1].copy())
    results = {}
    for mode in ("none", "flip"):
        out = tmp_path / mode
        assert (
            main(
                [
                    "--model",
                    str(model_path),
                    str(tmp_path / "in"),
                    "--no-detect",
                    "--tta",
                    mode,
                    "--out",
                    str(out),
                    "--quiet",
                ]
            )
            == 0
        )
        results[mode] = pd.read_csv(out / "predictions.csv").set_index("file")
    flip = results["flip"]
    np.testing.assert_allclose(
        flip.filter(like="p_").iloc[0], flip.filter(like="p_").iloc[1], atol=1e-5
    )
    plain = results["none"]
    assert not np.allclose(
        plain.filter(like="p_").iloc[0], plain.filter(like="p_").iloc[1], atol=1e-5
    )
    with pytest.raises(SystemExit) as refused:
        main(["--model", str(model_path), str(tmp_path / "in"), "--tta", "fivecrop"])
    assert refused.value.code == 2


def test_cli_tta_auto_predicts_with_the_mode_the_evaluation_chose(model_path, tmp_path, capsys):
    """--tta auto reads the mode from the model's run folder (metrics/<model>.json); without an
    evaluation it refuses with what to do, before reading any image."""
    import json
    import shutil

    rng = np.random.default_rng(6)
    face = rng.integers(0, 255, (48, 48, 3), np.uint8)
    _save(tmp_path / "in" / "a.png", face)
    _save(tmp_path / "in" / "b.png", face[:, ::-1].copy())
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    shutil.copy(model_path, run / "models" / "custom_cnn.keras")
    args = ["--model", str(run / "models" / "custom_cnn.keras"), str(tmp_path / "in")]
    args += ["--no-detect", "--tta", "auto", "--quiet"]
    assert main(args) == 2
    assert "--tta auto uses the mode notebook 05 chose" in capsys.readouterr().err
    (run / "metrics").mkdir()
    (run / "metrics" / "custom_cnn.json").write_text(json.dumps({"tta": "flip"}))
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    assert "test-time augmentation: flip (as notebook 05 evaluated it)" in capsys.readouterr().err
    probs = pd.read_csv(tmp_path / "out" / "predictions.csv").filter(like="p_")
    np.testing.assert_allclose(probs.iloc[0], probs.iloc[1], atol=1e-5)  # mirror-averaged
    (run / "metrics" / "custom_cnn.json").write_text(json.dumps({"tta": "fivecrop"}))
    assert main(args) == 2
    assert "fivecrop" in capsys.readouterr().err
    stale = {"tta": "tencrop", "trained": {"model_sha256": "0" * 64, "card_finished_at": None}}
    (run / "metrics" / "custom_cnn.json").write_text(json.dumps(stale))  # an earlier training's
    assert main([*args, "--out", str(tmp_path / "stale")]) == 0
    err = capsys.readouterr().err
    assert "test-time augmentation: none, the plain view (--tta auto reads notebook 05" in err
    assert "tencrop" not in err
    probs = pd.read_csv(tmp_path / "stale" / "predictions.csv").filter(like="p_")
    assert not np.allclose(probs.iloc[0], probs.iloc[1], atol=1e-5)  # one view each


def test_first_use_messages(model_path, tmp_path, capsys):
    """A demo-trained model says so; a crop-sized photo without a face suggests --no-detect;
    a tiny image is annotated large enough to read."""
    import json
    import shutil

    from helpers.inference.cli import no_face_hint, training_note

    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    model = run / "models" / "custom_cnn.keras"
    shutil.copy(model_path, model)
    assert training_note(model) is None  # nothing says how it was trained
    card = {"profile": "smoke", "epochs_run": 1}
    (run / "models" / "custom_cnn.json").write_text(json.dumps(card))
    (run / "manifest.json").write_text(json.dumps({"data": {"demo": False}}))  # its own faces
    note = training_note(model)
    assert "trained by the smoke profile (1 epoch: a check" in note and "demo" not in note
    (run / "models" / "custom_cnn.json").write_text(json.dumps({"profile": "smoke"}))
    assert "trained by the smoke profile (a check" in training_note(model)
    (run / "manifest.json").write_text(json.dumps({"data": {"demo": True}}))
    assert f"(run {run.name} used the demo dataset)" in training_note(model)

    crop = tmp_path / "crop.png"
    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(crop)
    assert no_face_hint(str(crop)).endswith(
        "(48x48: if it is already a face crop, pass --no-detect)"
    )
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((400, 600, 3), 128, np.uint8)).save(photo)
    assert no_face_hint(str(photo), 0.2).endswith(
        "(faces under 0.2 of its shorter side, 80 px, were not looked for: "
        "--min-face-share 0 looks for every face)"
    )
    assert no_face_hint(str(photo)) == f"no face found: {photo}"
    assert main(["--model", str(model), str(crop), str(photo), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "were not looked for: --min-face-share 0" in err
    assert "faces under 0.2 of an image's shorter side are not looked for" in err
    assert err.splitlines()[0].startswith("note: custom_cnn.keras was trained on the generated")
    assert "pass --no-detect" in err

    rows = pd.DataFrame(
        [
            {
                "status": "ok",
                "box_x": 4,
                "box_y": 4,
                "box_w": 40,
                "box_h": 40,
                "expression": "Happy",
                "confidence": 0.9,
            }
        ]
    )
    assert annotate(np.zeros((48, 48, 3), np.uint8), rows).shape == (480, 480, 3)


def test_a_folder_of_face_crops_searched_for_faces_gets_one_line_not_one_per_image(
    model_path, tmp_path, capsys, monkeypatch
):
    """48 px crops without --no-detect: the detector finds a zoomed part of some and nothing
    in others; one line counts both and suggests --no-detect, a larger photo keeps its own."""
    folder = tmp_path / "crops"
    for i, level in enumerate((90, 90, 90, 200, 200)):
        _save(folder / f"c{i}.png", np.full((48, 48, 3), level, np.uint8))
    _save(folder / "photo.png", np.full((400, 600, 3), 90, np.uint8))
    monkeypatch.setattr(
        Detector, "__call__", lambda self, im: [(3, 1, 41, 41)] * int(im.mean() > 150)
    )
    code, err = _cli_err(capsys, ["--model", str(model_path), str(folder), "--quiet"])
    assert code == 0
    lines = [line for line in err.splitlines() if "no-detect" in line]
    assert len(lines) == 1 and lines[0].startswith(
        f"5 images of at most 160 px look like face crops ({folder / 'c0.png'} 48x48, "
    )
    assert "3 with no face found, 2 with a face found inside them; if they are" in lines[0]
    assert f"no face found: {folder / 'photo.png'}" in err
    assert "c0.png (48x48" not in err


def test_no_detect_on_a_whole_photo_says_so(model_path, tmp_path, capsys):
    """--no-detect reads each image as one face: a photo far from square gets a line saying
    so; square crops do not."""
    photo, crop = tmp_path / "photo.jpg", tmp_path / "crop.png"
    Image.fromarray(np.full((480, 640, 3), 90, np.uint8)).save(photo)
    Image.fromarray(np.full((48, 48, 3), 90, np.uint8)).save(crop)
    args = ["--model", str(model_path), "--no-detect", "--quiet"]
    assert main([*args, str(crop)]) == 0
    assert "far from square" not in capsys.readouterr().err
    assert main([*args, str(crop), str(photo)]) == 0
    err = capsys.readouterr().err
    assert f"{photo} (640x480) is far from square: leave --no-detect out" in err
    assert "crop.png" not in err.split("far from square")[0]


def test_faces_are_cropped_as_the_models_training_faces_were(
    model_path, tmp_path, capsys, monkeypatch
):
    """The crop margin is the framing measured on the model's training faces (its card), the
    default 0.2 without one, or --margin; the command says which."""
    import json
    import shutil

    from helpers.inference import predict as predict_module

    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    model = run / "models" / "custom_cnn.keras"
    shutil.copy(model_path, model)
    _save(tmp_path / "in" / "scene.png", _scene(FACE_SEEDS[:1])[0])
    margins: list[float] = []
    crop = predict_module.crop_face
    monkeypatch.setattr(
        predict_module, "crop_face", lambda image, box, m: margins.append(m) or crop(image, box, m)
    )
    args = ["--model", str(model), str(tmp_path / "in"), "--quiet"]
    assert main(args) == 0 and margins == [0.2]
    assert "margin 0.2 of the face box per side (the default: no measured" in (
        capsys.readouterr().err
    )
    card = {"face_framing": {"margin": 0.01, "side_over_box": 1.02, "found": 80, "sampled": 100}}
    (run / "models" / "custom_cnn.json").write_text(json.dumps(card))
    assert main(args) == 0 and margins[-1] == 0.01
    assert "margin 0.01 of the face box per side (the framing of its training faces" in (
        capsys.readouterr().err
    )
    assert main([*args, "--margin", "0.3"]) == 0 and margins[-1] == 0.3
    assert "(--margin)" in capsys.readouterr().err
    predict_images(model, [tmp_path / "in"], progress=False)  # the Python API reads it too
    assert margins[-1] == 0.01


# --------------------------------------------------------------------------- odd inputs


def _cli_err(capsys, argv: list[str]) -> tuple[int, str]:
    """Exit status and stderr of one command."""
    code = main(argv)
    return code, capsys.readouterr().err


def test_a_name_that_is_not_utf8_gets_its_row_and_the_rest_carry_on(model_path, tmp_path):
    folder = tmp_path / "in"
    odd = _save(
        Path(os.fsdecode(bytes(folder) + b"/bad\xff\xfename.png")), np.zeros((30, 30, 3), np.uint8)
    )
    _save(folder / "ok.png", np.zeros((30, 30, 3), np.uint8))
    table = predict_images(Stub(), folder, detect=False, progress=False)
    assert list(table["status"]) == ["ok", "ok"]
    assert table["file"].iloc[0] == str(odd).encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace"
    )
    out = tmp_path / "out"
    args = ["--model", str(model_path), str(folder), "--no-detect", "--quiet", "--out", str(out)]
    assert main(args) == 0
    assert pd.read_csv(out / "predictions.csv")["file"].str.contains("bad\ufffd\ufffdname").any()


def test_repeated_inputs_are_read_once(tmp_path, monkeypatch):
    image = _save(tmp_path / "a.png", np.zeros((30, 30, 3), np.uint8))
    (tmp_path / "link.png").symlink_to(image)
    monkeypatch.chdir(tmp_path)
    stub = Stub()
    table = predict_images(
        stub, ["a.png", "a.png", "./a.png", tmp_path], detect=False, progress=False
    )
    assert list(table["file"]) == ["a.png"] and [b[0] for b in stub.batches] == [1]


def test_one_crop_sized_image_is_said_in_the_singular():
    from helpers.inference.cli import crop_sized_line

    line = crop_sized_line({"a.png": (48, 48)}, 0)
    assert line is not None
    assert line.startswith("1 image of at most 160 px looks like a face crop (a.png")


def test_heic_photos_are_named_and_files_a_folder_skips_are_counted(model_path, tmp_path, capsys):
    folder = tmp_path / "in"
    _save(folder / "a.png", np.zeros((30, 30, 3), np.uint8))
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 100
    (folder / "photo.heic").write_bytes(heic)
    (folder / "phone.jpg").write_bytes(heic)  # a HEIC photo by its bytes, whatever its name
    (folder / "notes.txt").write_text("not a picture")
    table = predict_images(Stub(), folder / "photo.heic", progress=False)
    assert "HEIC/HEIF photo, not supported (convert it to JPEG or PNG)" in table["error"].iloc[0]
    code, err = _cli_err(
        capsys, ["--model", str(model_path), str(folder), "--no-detect", "--quiet"]
    )
    assert code == 0
    for name in ("photo.heic", "phone.jpg"):
        assert f"skipped: {folder / name}: HEIC/HEIF photo, not supported" in err
    assert "left out 1 file in the input folders that are neither an image nor a video" in err


AVIF_HEAD = b"\x00\x00\x00\x20ftypavif\x00\x00\x00\x00avifmif1miafMA1B" + bytes(40)


def test_a_folder_with_no_photo_lists_avif_among_what_is_read_where_pillow_decodes_it(tmp_path):
    """The predictor reads the extensions the readers read, AVIF among them on a Pillow that
    decodes it, and its note for a folder with nothing to read says so."""
    import zipfile

    from helpers.core.images import AVIF_DECODES

    docs = tmp_path / "docs.zip"
    with zipfile.ZipFile(docs, "w") as zf:
        zf.writestr("notes.txt", b"x")
    table = predict_images(Stub(), docs, detect=False, progress=False)
    (error,) = table["error"]
    assert "holds no image or video files" in error and ".jpg" in error and ".3gp" in error
    assert (".avif" in error) == AVIF_DECODES


@pytest.mark.parametrize("in_zip", [False, True], ids=["file", "zip member"])
def test_an_avif_photo_pillow_cannot_decode_is_called_avif_not_heic(tmp_path, monkeypatch, in_zip):
    """On a Pillow without its AVIF plugin an AVIF photo is said to be one, as the readers say,
    not a HEIC photo; a HEIC photo inside a zip input is named as one in a file is."""
    import zipfile

    from helpers.core import images
    from helpers.core.images import NOT_DECODED_AVIF, NOT_DECODED_HEIC, make_uri

    monkeypatch.setattr(images, "AVIF_DECODES", False)
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 100
    if in_zip:
        archive = tmp_path / "photos.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("x.avif", AVIF_HEAD)
            zf.writestr("y.heic", heic)
        names = [make_uri(archive, "x.avif"), make_uri(archive, "y.heic")]
        inputs: list = [archive]
    else:
        (tmp_path / "x.avif").write_bytes(AVIF_HEAD)
        (tmp_path / "y.heic").write_bytes(heic)
        names = [str(tmp_path / "x.avif"), str(tmp_path / "y.heic")]
        inputs = [Path(n) for n in names]
    table = predict_images(Stub(), inputs, detect=False, progress=False)
    errors = dict(zip(table["file"], table["error"], strict=True))
    assert errors[names[0]].endswith(NOT_DECODED_AVIF) and "HEIC" not in errors[names[0]]
    assert errors[names[1]].endswith(NOT_DECODED_HEIC)


def test_a_pillow_that_predates_its_avif_module_does_not_read_avif(monkeypatch):
    """Pillow before 11.2 raises for a module it has never heard of: no AVIF, no error."""
    from PIL import features

    from helpers.core import images

    def unknown(name: str) -> bool:
        raise ValueError(f"Unknown module {name}")

    monkeypatch.setattr(features, "check_module", unknown)
    assert images.avif_decodes() is False


def test_a_folder_judges_each_file_by_its_bytes_as_a_file_named_alone(tmp_path):
    folder = tmp_path / "in"
    jpeg = _save(folder / "a_photo.jpg", np.full((30, 40, 3), 90, np.uint8))
    (folder / "b_iphone.heic").write_bytes(jpeg.read_bytes())
    (folder / "c_photo.mp4").write_bytes(jpeg.read_bytes())
    (folder / "d_video.jpg").write_bytes(_video(tmp_path / "clip.avi", 6).read_bytes())
    (folder / "e_empty.mp4").write_bytes(b"")
    table = predict_images(Stub(), folder, detect=False, every=5, progress=False)
    alone = pd.concat(
        [
            predict_images(Stub(), p, detect=False, every=5, progress=False)
            for p in table["file"].unique()
        ]
    )
    for got in (table, alone):
        frames = {
            Path(f).name: [None if pd.isna(v) else int(v) for v in group]
            for f, group in got.groupby("file")["frame"]
        }
        assert frames == {
            "a_photo.jpg": [None],
            "b_iphone.heic": [None],
            "c_photo.mp4": [None],  # a photo, not a one-frame video
            "d_video.jpg": [0, 5],
            "e_empty.mp4": [None],
        }
        assert list(got["status"]) == ["ok"] * 5 + ["error"]
        (error,) = got["error"].dropna()
        assert error == f"{folder / 'e_empty.mp4'}: empty file (0 bytes), not a video"


def test_links_to_nothing_are_listed_and_os_junk_is_passed_over(tmp_path, capsys):
    folder = tmp_path / "in"
    _save(folder / "a.png", np.zeros((30, 30, 3), np.uint8))
    (folder / "gone.jpg").symlink_to(folder / "deleted.jpg")
    (folder / "._a.png").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # a macOS resource fork
    (folder / ".DS_Store").write_bytes(b"Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf")
    _save(folder / "__MACOSX" / "._b.png", np.zeros((8, 8), np.uint8))
    for given in (folder, folder / "gone.jpg"):
        table = predict_images(Stub(), given, detect=False, progress=False)
        assert table.attrs["left_out"] == []
        errors = table[table["status"] == "error"]
        assert list(errors["file"]) == [str(folder / "gone.jpg")]
        assert (
            errors["error"]
            .iloc[0]
            .endswith(f"broken symbolic link (to {folder}/deleted.jpg, not found)")
        )
    assert list(table["status"]) == ["error"]


def test_a_zip_of_photos_is_read_photo_by_photo_once_its_checks_pass(model_path, tmp_path, capsys):
    """A .zip named as an input: its photos are read in place (zip:// rows), its other files
    counted as left out, a video in it named with what to do; an archive that fails the
    checks the dataset readers make, or holds no photo, is one row saying so."""
    import zipfile

    from helpers.core.images import make_uri

    photo = _save(tmp_path / "p.png", np.full((40, 40, 3), 90, np.uint8)).read_bytes()
    clip = _video(tmp_path / "clip.avi", 2).read_bytes()
    faces, evil, docs = tmp_path / "faces.zip", tmp_path / "evil.zip", tmp_path / "docs.ZIP"
    for archive, members in (
        (faces, {"happy/a.png": photo, "b.jpg": photo, "notes.txt": b"x", "clip.avi": clip}),
        (evil, {"../escape.png": photo}),
        (docs, {"notes.txt": b"x"}),
    ):
        with zipfile.ZipFile(archive, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
            if archive == faces:
                zf.writestr("__MACOSX/._b.jpg", b"\x00\x05\x16\x07")
    table = predict_images(Stub(), [faces, evil, docs], detect=False, progress=False)
    ok = table[table["status"] == "ok"]
    assert ok["file"].tolist() == [make_uri(faces, "b.jpg"), make_uri(faces, "happy/a.png")]
    bad = table[table["status"] == "error"]
    errors = dict(zip(bad["file"], bad["error"], strict=True))
    assert errors[make_uri(faces, "clip.avi")].endswith(
        "cannot be decoded from it: extract it first"
    )
    assert "'..' component in member name" in errors[str(evil)]
    assert errors[str(docs)].startswith(f"{docs}: zip archive holds no image or video files")
    assert table.attrs["left_out"] == [make_uri(z, "notes.txt") for z in (faces, docs)]
    out = tmp_path / "out"
    argv = ["--model", str(model_path), str(faces), "--no-detect", "--quiet", "--out", str(out)]
    code, err = _cli_err(capsys, [*argv, "--annotate"])
    assert code == 0 and "left out 1 file" in err
    assert sorted(p.name for p in (out / "annotated").iterdir()) == ["a.jpg", "b.jpg"]
    code, err = _cli_err(capsys, ["--model", str(model_path), str(faces), "--quiet"])
    assert code == 0 and "2 images of at most 160 px look like face crops" in err


def test_linked_sub_folders_are_searched_each_real_folder_once(tmp_path):
    """A folder linked into an input folder (an external drive, a cloud folder) is searched; a
    folder holding only such a link is not empty; a link back up is no loop, and a file
    reached both directly and through a link is read once, by its real folder's name."""
    elsewhere = tmp_path / "drive" / "2023"
    _save(elsewhere / "IMG_0001.jpg", np.zeros((30, 30, 3), np.uint8))
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "photos2023").symlink_to(elsewhere, target_is_directory=True)
    table = predict_images(Stub(), alone, detect=False, progress=False)
    assert table["file"].tolist() == [str(alone / "photos2023" / "IMG_0001.jpg")]
    assert table["status"].tolist() == ["ok"]
    mixed = tmp_path / "mixed"
    _save(mixed / "real" / "a.png", np.zeros((30, 30, 3), np.uint8))
    (mixed / "a_link").symlink_to(mixed / "real", target_is_directory=True)
    (mixed / "real" / "up").symlink_to(mixed, target_is_directory=True)
    (mixed / "drive").symlink_to(elsewhere, target_is_directory=True)
    table = predict_images(Stub(), mixed, detect=False, progress=False)
    assert table["file"].tolist() == [
        str(mixed / "drive" / "IMG_0001.jpg"),
        str(mixed / "real" / "a.png"),
    ]


def test_decoder_chatter_stays_off_the_terminal(tmp_path, capfd):
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8), (0, 0), 3)
    data = bytearray(cv2.imencode(".jpg", image)[1].tobytes())
    for i in range(600, len(data) - 10, 97):  # damaged scan data that libjpeg still decodes
        data[i] = 0 if data[i] == 0xFF else 0xFF
    (tmp_path / "damaged.jpg").write_bytes(bytes(data))
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    table = predict_images(Stub(), tmp_path, detect=False, progress=False)
    assert table.set_index("file")["status"].to_dict() == {
        str(tmp_path / "broken.mp4"): "error",
        str(tmp_path / "damaged.jpg"): "ok",
    }
    err = capfd.readouterr().err
    assert "Corrupt JPEG data" not in err and "moov atom" not in err


# --------------------------------------------------------------------------- model files


def _run_with_card(tmp_path: Path, model_path: Path) -> Path:
    """A run folder holding the model, a card with a measured margin and its evaluation."""
    import shutil

    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "metrics").mkdir()
    shutil.copy(model_path, run / "models" / "custom_cnn.keras")
    card = {"face_framing": {"margin": 0.01}, "profile": "smoke"}
    (run / "models" / "custom_cnn.json").write_text(json.dumps(card))
    (run / "metrics" / "custom_cnn.json").write_text(json.dumps({"tta": "flip"}))
    return run / "models" / "custom_cnn.keras"


def test_a_model_named_without_its_folder_keeps_its_run(model_path, tmp_path, monkeypatch):
    from helpers.inference.cli import evaluated_tta, training_note
    from helpers.inference.predict import training_margin

    model = _run_with_card(tmp_path, model_path)
    link = tmp_path / "elsewhere" / "best.keras"
    link.parent.mkdir()
    link.symlink_to(model)
    monkeypatch.chdir(model.parent)
    for typed in ("custom_cnn.keras", "./custom_cnn.keras", str(link)):
        assert training_margin(typed)[0] == 0.01, typed
        assert evaluated_tta(typed) == "flip", typed
        assert "the smoke profile" in training_note(typed), typed
    outside = tmp_path / "blob.keras"  # a link in a run folder to a file outside any run
    outside.write_bytes(b"")
    (model.parent / "other.keras").symlink_to(outside)
    (model.parent / "other.json").write_text(json.dumps({"face_framing": {"margin": 0.3}}))
    assert training_margin("other.keras")[0] == 0.3


def test_a_model_copied_out_of_its_run_folder_keeps_the_classes_of_its_card(
    model_path, tmp_path, capsys
):
    """A 3-class model shared as its .keras file and card chooses among the three classes the
    card lists, framed as the card says, and says once that it is uncalibrated (temperature
    1) outside its run folder; the file alone says it chooses among every class."""
    import shutil

    from helpers.inference.predict import model_classes, outside_note
    from helpers.models.saving import load_trained
    from helpers.train.card import trained_classes

    three = trained_classes(pd.DataFrame({"expression": [2, 0, 1, 1]}))
    assert three == ["Neutral", "Happy", "Sad"]
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "metrics").mkdir()
    model = run / "models" / "custom_cnn.keras"
    shutil.copy(model_path, model)
    card = {"expression_classes": three, "profile": "smoke", "face_framing": {"margin": 0.01}}
    (run / "models" / "custom_cnn.json").write_text(json.dumps(card))
    metrics = {
        "expression": {"restricted_to": three},
        "calibration": {"temperatures": {"none": 2.0}, "n": 40},
    }
    (run / "metrics" / "custom_cnn.json").write_text(json.dumps(metrics))
    shared = tmp_path / "shared"
    shared.mkdir()
    for file in ("custom_cnn.keras", "custom_cnn.json"):
        shutil.copy(run / "models" / file, shared / file)
    copied = shared / "custom_cnn.keras"
    face = np.random.default_rng(5).integers(0, 255, (48, 48), np.uint8)
    _save(tmp_path / "in" / "face.png", face)
    others = [f"p_{name}" for name in EXPRESSIONS[3:]]
    mine = [f"p_{name}" for name in three]

    at_home = predict_images(model, [face], detect=False, progress=False)
    assert (at_home[others] == 0).all(axis=None)
    assert "<model>" in at_home.attrs["notes"]  # the smoke profile, and nothing about a copy
    assert not [n for n in at_home.attrs["notes"]["<model>"] if "outside its run" in n]
    raw = predict_images(model, [face], detect=False, progress=False, temperature=1.0)
    for given in (copied, load_trained(copied)):
        table = predict_images(given, [face], detect=False, progress=False)
        assert (table[others] == 0).all(axis=None)
        assert table[mine].sum(axis=1).iloc[0] == pytest.approx(1.0)
        pd.testing.assert_frame_equal(table, raw)  # the run's classes, temperature 1
        assert table.attrs["model"]["classes"] == [0, 1, 2]
        notes = table.attrs["notes"]["<model>"]
        assert [n for n in notes if "trained by the smoke profile" in n]
        (outside,) = [n for n in notes if "outside its run folder" in n]
        assert "uncalibrated (temperature 1, the raw softmax)" in outside
        assert "its 3 classes (Neutral, Happy, Sad) are those its card custom_cnn.json" in outside
    framed = predict_images(copied, [face], progress=False, detector=lambda im: [(8, 8, 32, 32)])
    at_run = predict_images(
        model, [face], progress=False, detector=lambda im: [(8, 8, 32, 32)], temperature=1.0
    )
    assert framed["confidence"].iloc[0] == pytest.approx(at_run["confidence"].iloc[0])

    args = [str(tmp_path / "in"), "--no-detect", "--quiet"]
    assert main(["--model", str(copied), *args, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "classes: 3 of 8 (Neutral, Happy, Sad), those it trained on (custom_cnn.json" in err
    assert err.count("is outside its run folder") == 1
    rows = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert (rows[others] == 0).all(axis=None)

    alone = tmp_path / "alone" / "mine.keras"  # the file alone, renamed
    alone.parent.mkdir()
    shutil.copy(model, alone)
    table = predict_images(alone, [face], detect=False, progress=False)
    assert (table[others] > 0).all(axis=None)
    (note,) = table.attrs["notes"]["<model>"]
    assert "mine.keras is outside its run folder" in note
    assert "with no card mine.json beside it, it chooses among every class of its head" in note
    assert main(["--model", str(alone), *args, "--uncalibrated"]) == 0
    assert "outside its run folder" not in capsys.readouterr().err
    card_of_all = {"expression_classes": list(EXPRESSIONS)}
    (shared / "custom_cnn.json").write_text(json.dumps(card_of_all))
    assert model_classes(copied) == (None, "every class of its expression head")
    assert "every class of its head, as its card custom_cnn.json lists" in outside_note(copied)
    (shared / "custom_cnn.json").write_text(json.dumps({"profile": "cpu"}))  # an older card
    assert "its card custom_cnn.json lists no classes it trained on" in outside_note(copied)
    assert outside_note(model) is None


def test_model_files_in_upper_case_and_model_folders(model_path, tmp_path, capsys):
    import shutil

    upper = tmp_path / "CUSTOM.KERAS"
    shutil.copy(model_path, upper)
    assert open_model(upper).metadata["image_size"] == 48
    image = _save(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8))
    code, err = _cli_err(capsys, ["--model", str(tmp_path), str(image)])
    assert code == 2 and "is a folder, not a model file" in err


def test_a_sidecar_whose_labels_do_not_fit_the_output_is_refused(tmp_path):
    from helpers.core.errors import DataError
    from helpers.inference.runtime import TFLiteModel

    path = tmp_path / "m.tflite"
    path.write_bytes(b"TFL3")
    tensor = {"dtype": "float32", "scale": 0.0, "zero_point": 0}
    side = {
        "input": {**tensor, "name": "image"},
        "outputs": {"expression": {**tensor, "shape": [-1, 8]}},
        "metadata": {"heads": ["expression"], "image_size": 48, "channels": 1, "labels": ["a"]},
    }
    (tmp_path / "m.tflite.json").write_text(json.dumps(side))
    with pytest.raises(DataError, match=r"m\.tflite\.json: damaged sidecar: metadata\.labels"):
        TFLiteModel(path)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--scale-factor", "inf"),
        ("--scale-factor", "nan"),
        ("--scale-factor", "1e9"),
        ("--min-face", "100000000000"),
        ("--min-neighbors", "100000000000"),
        ("--every", "0"),
    ],
)
def test_out_of_range_options_name_their_flag(flag, value, tmp_path, capsys):
    image = _save(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8))
    code, err = _cli_err(capsys, ["--model", str(tmp_path / "m.keras"), str(image), flag, value])
    assert code == 2 and err.startswith(f"error: {flag} must be") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "kwargs", [{"scale_factor": float("inf")}, {"scale_factor": 3.0}, {"min_face": 10**11}]
)
def test_detector_settings_have_upper_bounds(kwargs):
    with pytest.raises(ConfigError, match="must be"):
        Detector(**kwargs)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--annotate"], "--annotate writes annotated images: give --out DIR"),
        (["--backend", "keras"], "--backend keras cannot run m.tflite"),
    ],
)
def test_options_that_cannot_work_are_refused(extra, message, tmp_path, capsys):
    image = _save(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8))
    code, err = _cli_err(capsys, ["--model", str(tmp_path / "m.tflite"), str(image), *extra])
    assert code == 2 and message in err


# --------------------------------------------------------------------------- output folder


def _out_cases(tmp_path: Path) -> dict[str, tuple[Path, bool, bool, str]]:
    """--out folders that cannot take this run: (folder, overwrite, annotate, message)."""
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    (tmp_path / "o4" / "predictions.csv").mkdir(parents=True)
    (tmp_path / "o3").mkdir()
    (tmp_path / "o3" / "annotated").write_text("")
    return {
        "dangling link": (tmp_path / "link", False, False, "is a link to a missing"),
        "csv is a folder": (tmp_path / "o4", True, False, "predictions.csv is a folder"),
        "annotated is a file": (tmp_path / "o3", False, True, "annotated is a file, not a folder"),
        "proc": (Path("/proc/predout"), False, False, "cannot create or write to /proc/predout"),
    }


@pytest.mark.parametrize(
    "case", ["dangling link", "csv is a folder", "annotated is a file", "proc"]
)
def test_an_out_folder_that_cannot_be_written_is_refused_before_any_work(
    case, tmp_path, capsys, monkeypatch
):
    from helpers.inference import cli

    out, overwrite, annotate_, message = _out_cases(tmp_path)[case]
    if case == "proc" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    monkeypatch.setattr(cli, "open_model", lambda *a: pytest.fail("loaded the model"))
    image = _save(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8))
    argv = ["--model", str(tmp_path / "m.keras"), str(image), "--out", str(out)]
    argv += ["--overwrite"] * overwrite + ["--annotate"] * annotate_
    code, err = _cli_err(capsys, argv)
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_outputs_that_cannot_be_written_after_the_work_are_one_line(
    model_path, tmp_path, capsys, monkeypatch
):
    from helpers.inference import cli

    folder = tmp_path / "o"
    (folder / "predictions.json").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"predictions\.json: cannot be written"):
        cli.write_outputs(pd.DataFrame({"file": ["a"]}), folder)

    def full(*args, **kwargs):
        raise ConfigError(f"{tmp_path / 'x' / 'predictions.csv'}: cannot be written (No space)")

    monkeypatch.setattr(cli, "write_outputs", full)
    image = _save(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8))
    argv = ["--model", str(model_path), str(image), "--no-detect", "--quiet"]
    code, err = _cli_err(capsys, [*argv, "--out", str(tmp_path / "x")])
    assert code == 2 and "Traceback" not in err and err.endswith("(No space)\n")


def test_an_out_folder_holds_one_run(model_path, tmp_path, capsys):
    inputs = tmp_path / "in"
    _save(inputs / "a.png", np.zeros((30, 30, 3), np.uint8))
    out = tmp_path / "o2"
    base = ["--model", str(model_path), str(inputs), "--no-detect", "--quiet", "--out", str(out)]
    assert main([*base, "--format", "json", "--annotate"]) == 0
    (out / "annotated" / "mine.txt").write_text("kept")
    capsys.readouterr()
    code, err = _cli_err(capsys, [*base, "--format", "csv"])
    assert code == 2 and "already holds predictions.json, annotated/" in err
    assert main([*base, "--format", "csv", "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["annotated", "predictions.csv"]
    assert [p.name for p in (out / "annotated").iterdir()] == ["mine.txt"]


def test_an_out_folder_inside_an_input_folder_is_not_read_back(model_path, tmp_path):
    folder = tmp_path / "selfin"
    _save(folder / "a.png", np.zeros((30, 30, 3), np.uint8))
    out = folder / "out"
    args = ["--model", str(model_path), str(folder), "--no-detect", "--quiet", "--out", str(out)]
    for again in ([], ["--overwrite"]):
        assert main([*args, "--annotate", *again]) == 0
        assert pd.read_csv(out / "predictions.csv")["file"].tolist() == [str(folder / "a.png")]
    table = predict_images(Stub(), folder, detect=False, progress=False, exclude=[out])
    assert table["file"].tolist() == [str(folder / "a.png")]


def test_an_out_folder_that_is_or_holds_an_input_folder_leaves_out_only_its_own_files(
    model_path, tmp_path, capsys
):
    """--out beside the photos (the input folder itself) or above them (its parent): the
    photos are read, the predictor's own files and folders from an earlier run are not."""
    for above in (0, 1):
        photos = tmp_path / f"par{above}" / "photos"
        _save(photos / "a.png", np.zeros((30, 30, 3), np.uint8))
        out = photos.parent if above else photos
        args = ["--model", str(model_path), str(photos), "--no-detect", "--quiet"]
        for again in ([], ["--overwrite"]):
            assert main([*args, "--out", str(out), "--annotate", *again]) == 0
            assert pd.read_csv(out / "predictions.csv")["file"].tolist() == [str(photos / "a.png")]
            err = capsys.readouterr().err
            assert "left out" not in err and "skipped" not in err


def test_a_model_that_fails_to_load_leaves_no_out_folder_behind(tmp_path, capsys):
    """The output folder is made and tried before the model loads; a model that then fails
    takes the empty folders it made away again, and leaves a folder that was there."""
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a model")
    image = _save(tmp_path / "a.png", np.zeros((20, 20, 3), np.uint8))
    out = tmp_path / "new" / "out"
    code, err = _cli_err(
        capsys, ["--model", str(broken), str(image), "--out", str(out), "--annotate"]
    )
    assert code == 2 and "broken.keras" in err
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    code, _ = _cli_err(capsys, ["--model", str(broken), str(image), "--out", str(kept)])
    assert code == 2 and kept.is_dir()


def test_a_model_whose_head_learned_nothing_says_so(model_path, tmp_path, capsys):
    """Notebook 05's health check, read from the metrics JSON beside the model."""
    import json
    import shutil

    from helpers.inference.cli import health_note

    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    model = run / "models" / "custom_cnn.keras"
    shutil.copy(model_path, model)
    assert health_note(model) is None  # not evaluated: nothing to say
    (run / "metrics").mkdir()
    health = {
        "collapsed": True,
        "collapsed_heads": ["expression"],
        "expression": {"collapsed": True, "reasons": ["predicts Happy for 95% of images"]},
    }
    (run / "metrics" / "custom_cnn.json").write_text(json.dumps({"health": health}))
    expected = (
        "custom_cnn.keras learned nothing in its expression head, metrics/custom_cnn.json "
        "says (expression: predicts Happy for 95% of images); treat its predictions as no "
        "better than a guess"
    )
    assert health_note(model) == expected
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48, 3), 128, np.uint8)).save(photo)
    assert main(["--model", str(model), str(photo), "--no-detect", "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err.count(f"note: {expected}") == 1  # said once, before the work


def test_wrong_python_api_arguments_are_one_line_config_errors(tmp_path):
    """Inputs, classes and detectors of the wrong kind, read_source given a number and the
    metrics given unknown class names or confidences outside [0, 1] each name the argument
    and what is accepted, instead of a bare TypeError or IndexError from deep inside."""
    from helpers.data.datasets import read_source
    from helpers.evaluation import metrics

    face = np.full((48, 48), 128, np.uint8)
    with pytest.raises(ConfigError, match=r"inputs must be a path .* got int"):
        predict_images(Stub(), 123, progress=False)
    with pytest.raises(ConfigError, match=r"inputs must be .* got float"):
        predict_images(Stub(), [face, 1.5], progress=False)
    with pytest.raises(ConfigError, match=r"classes: 9 is not one of the class indices 0-7"):
        predict_images(Stub(), face, detect=False, classes=[9], progress=False)
    with pytest.raises(ConfigError, match="classes: 'Joy' is not one of"):
        predict_images(Stub(), face, detect=False, classes=["Happy", "Joy"], progress=False)
    named = predict_images(Stub(), face, detect=False, classes=["Happy", "Sad"], progress=False)
    assert named["expression"].iloc[0] == "Happy" and named["p_Neutral"].iloc[0] == 0
    with pytest.raises(ConfigError, match=r"detector must be a helpers.core.faces.Detector"):
        predict_images(Stub(), face, detector="x", progress=False)
    with pytest.raises(ConfigError, match=r"read_source: path must be .* got int"):
        read_source(123)
    scores = metrics.classification_metrics(["Happy", "Sad"], ["Happy", "Happy"])
    assert scores is not None and scores["accuracy"] == 0.5
    with pytest.raises(ConfigError, match="y_true: class labels must be indices or names"):
        metrics.classification_metrics(["Happy", "Joy"], ["Happy", "Happy"])
    with pytest.raises(ConfigError, match=r"expected_calibration_error: .* \[0, 1\], got 1.9, 60"):
        metrics.expected_calibration_error([True, False], [1.9, 60])


def test_predicting_again_and_again_in_one_process_retraces_nothing(model_path, tmp_path):
    """A notebook loop calling predict_images on a model file, batches of every size, prints no
    TensorFlow retracing warning: the model is called directly, no tf.function per call."""
    code = (
        "import numpy as np\n"
        "from helpers.inference.predict import predict_images\n"
        "faces = np.full((5, 48, 48, 1), 128, np.uint8)\n"
        "for i in range(7):\n"
        f"    predict_images({str(model_path)!r}, faces[: i % 5 + 1], detect=False,\n"
        "                   progress=False, batch_size=3)\n"
        "print('done')\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0 and "done" in result.stdout, result.stderr[-2000:]
    assert "retracing" not in result.stderr, result.stderr[-2000:]


def test_one_class_name_is_taken_like_one_class_index():
    """classes="Happy" chooses the one class, as classes=3 and classes=["Happy"] do; a lone
    unknown name is refused naming the classes accepted."""
    face = np.full((48, 48), 128, np.uint8)
    tables = [
        predict_images(Stub(), face, detect=False, classes=chosen, progress=False)
        for chosen in ("Happy", EXPRESSIONS.index("Happy"), ["Happy"])
    ]
    for table in tables:
        assert table["expression"].iloc[0] == "Happy" and table["p_Happy"].iloc[0] == 1
        pd.testing.assert_frame_equal(table, tables[0])
    with pytest.raises(ConfigError, match=r"classes must be 'auto', 'all' or .*Neutral.*'Joy'"):
        predict_images(Stub(), face, detect=False, classes="Joy", progress=False)


def test_a_model_file_is_loaded_once_while_it_is_unchanged(tmp_path):
    """Opening one .keras file again reuses the loaded model, whose compiled predict step is
    traced already; a file written again (another model) is loaded again."""
    from helpers.models.factory import build_model

    path = tmp_path / "m.keras"
    build_model("custom_cnn", image_size=32, channels=1, heads=("expression",)).save(path)
    first = open_model(path).model
    assert open_model(str(path)).model is first
    build_model("custom_cnn", image_size=40, channels=1, heads=("expression",)).save(path)
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))  # a later time, as a new file has
    again = open_model(path)
    assert again.model is not first and again.metadata["image_size"] == 40


def test_the_cli_follows_the_demo_clips_two_faces_by_default(model_path, tmp_path, capsys):
    """The generated clip holds two faces and a small false face the cascade finds in some
    frames: faces under a fifth of the frame's shorter side are not faces by default, so the
    CLI (and notebook 07, which uses the same default) follows two."""
    from helpers.data.synthetic import make_clip

    clip = tmp_path / "clip.avi"
    make_clip(clip, seed=0)
    assert main(["--model", str(model_path), str(clip), "--every", "5", "--quiet"]) == 0
    assert "2 face(s) followed" in capsys.readouterr().out
    table = predict_images(Stub(), clip, every=5, progress=False)
    assert table["track"].nunique() == 2
    assert main(["--model", str(model_path), str(clip), "--min-face-share", "2"]) == 2
    assert "--min-face-share must be a number in [0, 1]" in capsys.readouterr().err


def test_every_option_of_the_predictor_and_the_demo_generator_shows_its_default(monkeypatch):
    """--help states each default, and the predictor's ends with examples."""
    import argparse

    from helpers.data import synthetic
    from helpers.inference import cli

    parsers = {"predict": cli._parser()}

    def capture(self, *args, **kwargs):
        parsers["synthetic"] = self
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        synthetic.main([])
    for name, parser in parsers.items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.option_strings and action.nargs != 0 and action.default is not None:
                text = formatter._get_help_string(action)
                assert "default" in text, (name, action.option_strings, text)
    assert "examples:\n  python -m helpers.predict --model" in parsers["predict"].format_help()


def test_the_readmes_python_example_loads_a_run_model_and_predicts(model_path, tmp_path):
    """README's predictor section, as written, in a fresh interpreter: plain Keras included."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    (block,) = [
        b
        for b in re.findall(r"^```python\n(.*?)^```", readme, flags=re.S | re.M)
        if "load_trained(" in b and "predict_images(" in b
    ]
    models = tmp_path / "reports" / "20261207-133001" / "models"
    models.mkdir(parents=True)
    (models / "custom_cnn.keras").write_bytes(model_path.read_bytes())
    _save(tmp_path / "photos" / "group.jpg", _scene(FACE_SEEDS)[0])
    check = (
        "\nassert len(table) == 3 and set(table['status']) == {'ok'}, table"
        "\nimport numpy as np"
        "\nassert all(np.array_equal(a, b) for a, b in zip(same.get_weights(), "
        "model.get_weights()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", block + check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "confidence" in done.stdout  # the table printed


# --------------------------------------------------------------------------- the Python API


def _evaluated_run(tmp_path: Path, model_path: Path) -> Path:
    """A run folder of the demo data whose model notebook 05 evaluated with flip: a temperature
    at the top of its range, four classes scored and a head that learned nothing."""
    model = _run_with_card(tmp_path, model_path)
    run = model.parents[1]
    (run / "manifest.json").write_text(json.dumps({"data": {"demo": True}}))
    metrics = {
        "tta": "flip",
        "calibration": {"temperatures": {"none": 20.0, "flip": 20.0}, "n": 40},
        "expression": {"restricted_to": ["Neutral", "Happy", "Sad", "Surprise"]},
        "health": {
            "collapsed_heads": ["valence"],
            "valence": {"collapsed": True, "reasons": ["spread 0.001"]},
        },
    }
    (run / "metrics" / "custom_cnn.json").write_text(json.dumps(metrics))
    return model


def test_a_model_loaded_in_python_predicts_as_its_file_and_the_command_do(
    model_path, tmp_path, capsys
):
    """load_trained records the file it read: the object gets its run's temperature, classes
    and framing, as the path and the command do, and the command's notes on the model reach
    the table; a model built in memory says what it lacks."""
    from helpers.models.factory import build_model
    from helpers.models.saving import load_trained

    model = _evaluated_run(tmp_path, model_path)
    face = np.random.default_rng(3).integers(0, 255, (48, 48), np.uint8)
    _save(tmp_path / "in" / "face.png", face)
    loaded = load_trained(model)
    assert loaded.loaded_from == model
    by_path = predict_images(model, [face], detect=False, progress=False)
    by_object = predict_images(loaded, [face], detect=False, progress=False)
    pd.testing.assert_frame_equal(by_object, by_path)
    others = [f"p_{name}" for name in EXPRESSIONS[4:]]  # the classes it was not scored on
    assert (by_path[others] == 0).all(axis=None)
    args = ["--model", str(model), str(tmp_path / "in"), "--no-detect", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    command = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert command["confidence"].iloc[0] == pytest.approx(by_object["confidence"].iloc[0])
    notes = by_object.attrs["notes"]["<model>"]
    assert notes == by_path.attrs["notes"]["<model>"]
    assert [n for n in notes if "trained on the generated demo faces" in n]
    assert [n for n in notes if n.startswith("custom_cnn.keras learned nothing in its valence")]
    assert [n for n in notes if n.startswith("confidence: temperature 20 (") and "edge" in n]
    for note in notes[:2]:  # the command says them once, in the same words
        assert err.count(note) == 1
    framed = predict_images(loaded, [face], progress=False, detector=lambda im: [(8, 8, 32, 32)])
    assert framed.attrs["model"]["name"] == "custom_cnn"
    with_margin = predict_images(
        model, [face], progress=False, detector=lambda im: [(8, 8, 32, 32)]
    )
    pd.testing.assert_frame_equal(framed, with_margin)  # margin 0.01, from the card

    built = build_model("custom_cnn", image_size=48, channels=1)
    table = predict_images(built, [face], detect=False, progress=False)
    (note,) = table.attrs["notes"]["<model>"]
    assert note.startswith("a model object that names no file it was read from predicts with ")
    assert "temperature 1 (the raw softmax), every class of its head: give its .keras" in note


def test_tta_auto_reads_the_run_folder_of_a_model_file_or_a_loaded_model(model_path, tmp_path):
    """tta="auto", as the command's --tta auto: the mode notebook 05 evaluated the model with;
    a model that names no file is one line saying what to give instead."""
    from helpers.models.factory import build_model
    from helpers.models.saving import load_trained

    model = _run_with_card(tmp_path, model_path)  # metrics: tta flip
    face = np.random.default_rng(4).integers(0, 255, (48, 48), np.uint8)
    flip = predict_images(model, [face], detect=False, tta="flip", progress=False)
    for given in (model, str(model), load_trained(model)):
        auto = predict_images(given, [face], detect=False, tta="auto", progress=False)
        pd.testing.assert_frame_equal(auto, flip)
    built = build_model("custom_cnn", image_size=48, channels=1)
    with pytest.raises(ConfigError, match=r"^tta='auto' reads the mode .* names no file: give"):
        predict_images(built, [face], detect=False, tta="auto", progress=False)
    (model.parents[1] / "metrics" / "custom_cnn.json").unlink()
    with pytest.raises(ConfigError, match=r"^tta='auto' uses the mode notebook 05 chose for"):
        predict_images(model, [face], detect=False, tta="auto", progress=False)


def test_a_second_call_into_one_annotation_folder_overwrites_nothing(tmp_path):
    """Arrays are named array_0, array_1... in every call: a later call writing into the same
    folder takes the next free names, so the first call's pictures stay as they were."""
    out = tmp_path / "ann"
    faces = [np.full((48, 48), level, np.uint8) for level in (60, 120, 200)]
    first = predict_images(Stub(), faces[:2], detect=False, progress=False, annotate_dir=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["array_0.jpg", "array_1.jpg"]
    second = predict_images(Stub(), faces[2:], detect=False, progress=False, annotate_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in before} == before
    assert second.attrs["annotated"] == [out / "array_0-2.jpg"]
    assert list(second["annotated"]) == ["ann/array_0-2.jpg"]
    assert first.attrs["annotated"] == [out / "array_0.jpg", out / "array_1.jpg"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^annotate_dir .*file: cannot create or read"):
        predict_images(
            Stub(), faces[:1], detect=False, progress=False, annotate_dir=tmp_path / "file"
        )


def test_tta_auto_for_a_file_outside_its_run_folder_asks_for_a_mode(model_path, tmp_path):
    """A model file copied out of its run folder has no metrics naming the mode: tta="auto"
    says so and lists the modes, rather than naming a metrics file that never was."""
    import shutil

    alone = tmp_path / "shared" / "custom_cnn.keras"
    alone.parent.mkdir()
    shutil.copy(model_path, alone)
    expected = (
        r"^tta='auto' uses the mode notebook 05 chose for custom_cnn\.keras, but the file is "
        r"outside its run folder, whose metrics name the mode: give a mode \(none, flip, "
        r"tencrop\)$"
    )
    with pytest.raises(ConfigError, match=expected):
        evaluated_tta(alone)


def test_a_deployment_report_beside_a_copied_tflite_file_is_not_its_card(tmp_path):
    """export/<model>.json is the deployment report, not a card: a copied export/ folder's
    TFLite file has no card, and the note says the file beside it is none."""
    share = tmp_path / "share" / "export"
    share.mkdir(parents=True)
    tflite = share / "custom_cnn.int8.tflite"
    tflite.write_bytes(b"")
    report = {"model": "custom_cnn", "n": 40, "n_calibration": 20, "keras": {"accuracy": 0.5}}
    report["tflite_int8"] = {"file": tflite.name, "size_bytes": 0, "latency": {}}
    (share / "custom_cnn.json").write_text(json.dumps(report))
    assert model_card(tflite) is None
    note = outside_note(tflite)
    assert note is not None and "its card custom_cnn.json" not in note
    assert "custom_cnn.json beside it is no model card" in note
    assert training_margin(tflite)[1] == "the default: no measured framing in the model's card"
    (share / "custom_cnn.json").write_text(json.dumps({"profile": "cpu", "model": "custom_cnn"}))
    assert model_card(tflite) == share / "custom_cnn.json"


def test_note_lines_give_the_model_and_input_notes_without_their_keys():
    """The `<model>` and `<inputs>` keys name no file: their notes print as `note: sentence`,
    an input's as `note: clip.avi: sentence`."""
    table = pd.DataFrame()
    table.attrs["notes"] = {
        "<model>": ["custom_cnn.keras was trained by the smoke profile"],
        "<inputs>": ["the images look like face crops"],
        "clip.avi": ["decoded 10 of 30 stated frames"],
    }
    assert note_lines(table) == [
        "note: custom_cnn.keras was trained by the smoke profile",
        "note: the images look like face crops",
        "note: clip.avi: decoded 10 of 30 stated frames",
    ]
    assert note_lines(table, inputs_only=True) == ["note: clip.avi: decoded 10 of 30 stated frames"]


def test_a_rerun_with_overwrite_replaces_its_annotated_files(tmp_path):
    """overwrite=True (notebook 07's rerun into its run's annotated/) names the files by their
    inputs alone: two calls leave one file per photo, the second call's."""
    out = tmp_path / "annotated"
    faces = [np.full((48, 48), level, np.uint8) for level in (60, 120)]
    for _ in range(2):
        table = predict_images(
            Stub(), faces, detect=False, progress=False, annotate_dir=out, overwrite=True
        )
    assert sorted(p.name for p in out.iterdir()) == ["array_0.jpg", "array_1.jpg"]
    assert table.attrs["annotated"] == [out / "array_0.jpg", out / "array_1.jpg"]
    with pytest.raises(ConfigError, match=r"^overwrite must be True or False, got 'yes'$"):
        predict_images(Stub(), faces, progress=False, annotate_dir=out, overwrite="yes")


def test_images_that_look_like_face_crops_get_the_commands_hint_in_the_notes(
    model_path, tmp_path, monkeypatch, capsys
):
    """Small images searched for faces: one note suggests detect=False, as the command's line
    suggests --no-detect (which the command alone prints); larger images and detect=False get
    none."""
    crops = [np.full((96, 96, 3), level, np.uint8) for level in (90, 200)]
    _save(tmp_path / "in" / "c.png", crops[0])
    monkeypatch.setattr(
        Detector, "__call__", lambda self, im: [(3, 1, 60, 60)] * int(im.mean() > 150)
    )
    table = predict_images(Stub(), [*crops, tmp_path / "in"], progress=False)
    assert table.attrs["notes"]["<inputs>"] == [
        "3 images of at most 160 px look like face crops (<array 0> 96x96, <array 1> 96x96 "
        "and 1 more): 2 with no face found, 1 with a face found inside them; if they are "
        "already face crops, pass detect=False to read each one whole as one face"
    ]
    assert table.attrs["summary"]["read_in_part"] == 0
    for quiet in (
        predict_images(Stub(), crops, detect=False, progress=False),
        predict_images(Stub(), [np.full((400, 600, 3), 90, np.uint8)], progress=False),
    ):
        assert "<inputs>" not in quiet.attrs["notes"]
    assert main(["--model", str(model_path), str(tmp_path / "in"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "pass --no-detect" in err and "detect=False" not in err


def test_flags_folders_and_model_paths_of_the_wrong_type_are_one_line_config_errors(tmp_path):
    """detect and explain are True or False (a string is not read as true), annotate_dir a
    folder path, load_trained's path a str or Path: each refused before any model is loaded."""
    from helpers.models.saving import load_trained

    face = np.full((48, 48), 128, np.uint8)
    with pytest.raises(ConfigError, match=r"^detect must be True or False, got 'no'$"):
        predict_images(Stub(), face, detect="no", progress=False)
    with pytest.raises(ConfigError, match=r"^explain must be True or False, got 1$"):
        predict_images(Stub(), face, explain=1, annotate_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match=r"^annotate_dir must be a folder path .* got int$"):
        predict_images("missing.keras", face, annotate_dir=5, progress=False)
    with pytest.raises(ConfigError, match=r"^load_trained: path must be a .keras file .* int$"):
        load_trained(123)
    assert predict_images(Stub(), face, detect=np.bool_(False), progress=False)["status"][0] == "ok"


def test_help_on_predict_images_names_every_parameter():
    """help(predict_images) says what each argument does, one `name:` paragraph each."""
    import inspect

    doc = inspect.getdoc(predict_images)
    described = {line.split(":")[0] for line in doc.splitlines() if ":" in line}
    assert set(inspect.signature(predict_images).parameters) <= described
