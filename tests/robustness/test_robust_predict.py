"""The predictor CLI (`python -m helpers.predict`): a bad output folder is refused before any
model is loaded or any prediction made, and nothing on disk changes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.inference.cli import main


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from helpers.models.factory import build_model

    path = tmp_path_factory.mktemp("model") / "custom_cnn.keras"
    build_model("custom_cnn", image_size=48, channels=1).save(path)
    return path


@pytest.mark.parametrize("sub", ["", "sub"])
def test_out_on_a_file(model_path, tmp_path, capsys, monkeypatch, untouched, sub):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    image = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48, 3), 120, np.uint8)).save(image)
    monkeypatch.setattr(
        "helpers.inference.cli.predict_images",
        lambda *a, **k: pytest.fail("predicted before checking --out"),
    )
    with untouched():
        code = main(
            [
                "--model",
                str(model_path),
                str(image),
                "--out",
                str(taken / sub if sub else taken),
                "--quiet",
            ]
        )
    assert code == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def _face(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((48, 48, 3), 120, np.uint8)).save(path)
    return path


def test_out_already_holding_predictions(model_path, tmp_path, capsys):
    image, out = _face(tmp_path / "in" / "face.png"), tmp_path / "out"
    args = ["--model", str(model_path), str(image), "--no-detect", "--out", str(out), "--quiet"]
    assert main(args) == 0
    first = (out / "predictions.csv").read_bytes()
    (out / "predictions.csv").write_text("my edits")
    assert main(args) == 2
    assert "already holds predictions.csv, predictions.json; pass --overwrite" in (
        capsys.readouterr().err
    )
    assert (out / "predictions.csv").read_text() == "my edits"
    assert main([*args, "--overwrite"]) == 0
    assert (out / "predictions.csv").read_bytes() == first


def test_special_files_as_inputs(model_path, tmp_path, capsys):
    import os

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    image = _face(tmp_path / "face.png")
    assert (
        main(
            [
                "--model",
                str(model_path),
                str(fifo),
                "/dev/zero",
                str(image),
                "--no-detect",
                "--quiet",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "pipe.jpg: a FIFO (named pipe), not an image, video or folder: not read" in err
    assert "/dev/zero: a character device, not an image, video or folder: not read" in err


def test_unreadable_input_is_one_error_row(model_path, tmp_path, monkeypatch):
    import errno

    from helpers.inference import predict, sources

    good, bad = _face(tmp_path / "in" / "a.png"), _face(tmp_path / "in" / "b.png")
    real = sources.read_image

    def flaky(name, *args, **kwargs):
        if str(name) == str(bad):
            raise OSError(errno.EIO, "Input/output error")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(sources, "read_image", flaky)
    table = predict.predict_images(model_path, [good, bad], detect=False, progress=False)
    assert table["status"].tolist() == ["ok", "error"]
    assert table["error"].iloc[1].endswith("b.png: cannot be read (Input/output error)")


@pytest.mark.parametrize(
    "orientation, shape", [(1, (40, 80)), (3, (40, 80)), (6, (80, 40)), (8, (80, 40))]
)
def test_exif_orientation_is_applied_to_photos(tmp_path, orientation, shape):
    from helpers.inference.sources import Source, iter_frames

    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :20] = 255  # bright left edge as stored
    path = tmp_path / "phone.jpg"
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif.tobytes(), quality=95)
    ((_, _, shown),) = list(iter_frames(Source(str(path), "image")))
    assert shown.shape[:2] == shape
    expected = np.asarray(
        Image.open(path).transpose(Image.Transpose.ROTATE_270)
        if orientation == 6
        else Image.open(path)
    )
    if orientation in (1, 6):
        assert np.abs(shown.astype(int) - expected.astype(int)).mean() < 2
