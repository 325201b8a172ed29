"""What notebook 07 shows of the predictor: your photos or the demo scenes, rows a person can
read, this run's pictures, and the int8 model's agreement over the faces both models found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from helpers.core.errors import ConfigError, DataError
from helpers.inference import gallery


def _rows(*rows: dict) -> pd.DataFrame:
    """Predictor rows as predict_images gives them: a face per `ok` row, NaN elsewhere."""
    columns = ["file", "frame", "face", "status", "error", "box_x", "box_y", "box_w", "box_h",
               "expression", "confidence"]  # fmt: skip
    table = pd.DataFrame(list(rows), columns=columns)
    for col in ("frame", "face", "box_x", "box_y", "box_w", "box_h"):
        table[col] = pd.array(table[col], dtype="Int64")
    return table


def _face(file: str, face: int, expression: str, x: int = 10) -> dict:
    return {"file": file, "face": face, "status": "ok", "box_x": x + 100 * face, "box_y": 5,
            "box_w": 50, "box_h": 50, "expression": expression, "confidence": 0.5}  # fmt: skip


def test_photos_without_a_face_are_no_disagreement_and_no_face():
    failed = (
        {"file": "/p/blank.jpg", "status": "no_face", "error": "no face found"},
        {"file": "/p/broken.jpg", "status": "error", "error": "/p/broken.jpg: not an image"},
    )
    faces = [
        _face("/p/a.png", 0, "Happy"),
        _face("/p/a.png", 1, "Sad"),
        _face("/p/b.png", 0, "Fear"),
    ]
    keras = _rows(faces[0], failed[0], faces[1], failed[1], faces[2])
    lite = _rows(faces[0], failed[0], faces[1], failed[1], faces[2])
    assert gallery.agreement_line(keras, lite) == "int8 TFLite agrees with Keras on 100% of 3 faces"
    # one face the int8 model did not find, one it labels otherwise: the rows no longer line up
    lite = _rows(faces[0], failed[0], failed[1], {**faces[2], "expression": "Anger"})
    assert gallery.agreement_line(keras, lite) == (
        "int8 TFLite agrees with Keras on 50% of 2 faces (1 found by one of them only)"
    )
    nothing = _rows(*failed)
    assert "no face in common" in gallery.agreement_line(keras, nothing)


def test_the_rows_show_file_names_a_person_tells_apart_and_why_a_row_failed():
    keras = _rows(
        _face("/run/20261207-194612/demo_scenes/scene_0.jpg", 0, "Happy"),
        {
            "file": "/run/20261207-194612/demo_scenes/scene_1.jpg",
            "status": "no_face",
            "error": "no face found",
        },
    )
    table = gallery.shown(keras)
    assert table["file"].tolist() == ["scene_0.jpg", "scene_1.jpg"]
    assert table["error"].tolist()[1] == "no face found"
    assert "error" not in gallery.shown(keras.iloc[:1])  # nothing failed: no column of blanks
    assert gallery.readable(["/p/holiday 0.png", "/p/2024/june/beach.jpg"]) == [
        "holiday 0.png",
        "2024/june/beach.jpg",
    ]
    assert (
        gallery.found_line(keras, demo=True) == "faces found per scene: [1, 0] of 3 placed in each"
    )
    assert gallery.found_line(keras, demo=False) == (
        "2 inputs: 1 with faces (1 face), 1 without a face, 0 could not be read"
    )


def test_your_photos_are_checked_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "mine").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    assert gallery.own_photos("../mine") == [Path("../mine")]
    assert gallery.own_photos(["../mine", ""]) == [Path("../mine")]
    with pytest.raises(DataError, match=r"^mine: not found in .*\(the parameter photos\)$"):
        gallery.own_photos("mine")
    with pytest.raises(ConfigError, match="photos must be a path or a list of paths"):
        gallery.own_photos([3])
    with pytest.raises(ConfigError, match="n_scenes must be an integer >= 1"):
        gallery.inputs("", tmp_path / "scenes", 0, 0)


def test_run_all_checks_the_photos_set_for_notebook_07_before_any_stage():
    from helpers.run import values

    with pytest.raises(DataError, match=r"no_such: not found in .*\(the parameter photos\)"):
        values.check_values("smoke", "07_predict", None, {"photos": "../no_such"})
    values.check_values("smoke", "07_predict", None, {"photos": "07_predict.ipynb"})
    values.check_values("smoke", "07_predict", None, {"photos": ""})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A run folder with a (never trained) custom CNN, its card and its int8 TFLite export."""
    from helpers.inference.export import export_tflite
    from helpers.models.factory import build_model

    run = tmp_path_factory.mktemp("run")
    (run / "models").mkdir()
    build_model("custom_cnn", image_size=48, channels=1).save(run / "models" / "custom_cnn.keras")
    card = {"face_framing": {"margin": 0.2}, "profile": "smoke"}
    (run / "models" / "custom_cnn.json").write_text(json.dumps(card))
    (run / "settings.json").write_text(json.dumps({"profile": "smoke"}))
    faces = np.random.default_rng(0).integers(0, 256, (20, 48, 48), dtype=np.uint8)
    export_tflite(run / "models" / "custom_cnn.keras", run / "export" / "custom_cnn.int8.tflite",
                  quantize="int8", calibration_images=faces)  # fmt: skip
    return run


def test_notebook_07_on_your_own_photos(trained_run, tmp_path, capsys):
    """A folder with faces, a photo without one and a broken file: the faces both models found
    are compared, the file names read as in the folder, the failures say why, the gallery holds
    this run's pictures only, and no 'placed in each' of the demo scenes is claimed."""
    from builders import run_cells
    from test_predict import FACE_SEEDS, _save, _scene

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    mine = tmp_path / "my photos"
    _save(mine / "holiday 0.png", _scene(FACE_SEEDS)[0])
    _save(mine / "holiday 1.png", _scene(FACE_SEEDS[:1])[0])
    Image.new("RGB", (320, 240), (128, 128, 128)).save(mine / "blank.jpg")
    (mine / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (run / "annotated").mkdir()
    Image.new("RGB", (8, 8)).save(run / "annotated" / "scene_0.jpg")  # an earlier run's
    ns = run_cells("07_predict", [2, 3, 4, 5, 7], run_dir=str(run), use_model="custom_cnn",
                   photos=str(mine))  # fmt: skip
    said = capsys.readouterr().out
    rows = ns["rows"]
    faces = int((rows["status"] == "ok").sum())
    assert faces >= 2 and len(rows) > faces
    assert "int8 TFLite agrees with Keras on " in said and f"% of {faces} faces" in said
    assert "placed in each" not in said
    assert "4 inputs: 2 with faces" in said and "1 without a face, 1 could not be read" in said
    table = gallery.shown(rows)
    assert set(table["file"]) == {"holiday 0.png", "holiday 1.png", "blank.jpg", "broken.jpg"}
    failed = table.set_index("file")["error"]
    assert failed["blank.jpg"] == "no face found"
    assert failed["broken.jpg"].startswith("broken.jpg: ")  # the name, not the machine's path
    shown = [p.name for p in gallery.pictures(rows)]
    assert shown == ["holiday_0.jpg", "holiday_0_gradcam.jpg", "holiday_1.jpg",
                     "holiday_1_gradcam.jpg"]  # fmt: skip
    assert not (run / "demo_scenes").exists() or not list((run / "demo_scenes").glob("scene_*"))
    before = sorted(p.name for p in (run / "annotated").iterdir())
    run_cells("07_predict", [2, 3], run_dir=str(run), use_model="custom_cnn", photos=str(mine))
    assert sorted(p.name for p in (run / "annotated").iterdir()) == before  # a rerun replaces


def test_the_gallery_leaves_out_video_frames_and_draws_at_most_six_photos(tmp_path, capsys):
    """Hundreds of photos, or a clip's frame heatmaps, would make one figure past matplotlib's
    size limit: the notebook draws the first photos with their twins and names the folder."""
    folder = tmp_path / "annotated"
    written = [folder / "clip.avi", folder / "clip_f000010_gradcam.jpg"]
    for k in range(8):
        written += [folder / f"p{k}.jpg", folder / f"p{k}_gradcam.jpg"]
    rows = pd.DataFrame({"file": ["x"]})
    rows.attrs["annotated"] = [str(p) for p in written]
    shown = [p.name for p in gallery.pictures(rows)]
    assert shown == [f"p{k}{twin}.jpg" for k in range(6) for twin in ("", "_gradcam")]
    assert "showing the first 6 of 8 annotated photos" in capsys.readouterr().out
    rows.attrs["annotated"] = [str(p) for p in written[:6]]  # a clip and two photos: all shown
    assert [p.name for p in gallery.pictures(rows)] == ["p0.jpg", "p0_gradcam.jpg", "p1.jpg",
                                                        "p1_gradcam.jpg"]  # fmt: skip
    assert capsys.readouterr().out == ""
