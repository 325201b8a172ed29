"""The predictor CLI (`python -m helpers.predict`): a bad output folder is refused before any
model is loaded or any prediction made, and nothing on disk changes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers.predict import main


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from helpers.models import build_model

    path = tmp_path_factory.mktemp("model") / "custom_cnn.keras"
    build_model("custom_cnn", image_size=48, channels=1).save(path)
    return path


@pytest.mark.parametrize("sub", ["", "sub"])
def test_out_on_a_file(model_path, tmp_path, capsys, monkeypatch, untouched, sub):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    image = tmp_path / "face.png"
    Image.fromarray(np.full((48, 48, 3), 120, np.uint8)).save(image)
    monkeypatch.setattr("helpers.predict.predict_images",
                        lambda *a, **k: pytest.fail("predicted before checking --out"))
    with untouched():
        code = main(["--model", str(model_path), str(image), "--out",
                     str(taken / sub if sub else taken), "--quiet"])
    assert code == 2
    assert "is a file, not a folder" in capsys.readouterr().err
