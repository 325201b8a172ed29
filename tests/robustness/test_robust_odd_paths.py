"""Data, run folders and photos whose paths hold spaces and non-ASCII characters, end to end:
read, split, augmented, trained, and predicted on, by the real notebooks."""

from __future__ import annotations

import numpy as np
from PIL import Image

from helpers.core.images import read_image
from helpers.core.records import load_records
from helpers.core.run_folder import RunFolder
from helpers.data.synthetic import generate_zip
from helpers.inference.predict import predict_images
from helpers.run import runner


def test_spaces_and_accents_in_every_path(tmp_path, capsys):
    data = tmp_path / "données brutes" / "démo faces.zip"
    data.parent.mkdir()
    generate_zip(data, n=96, seed=3, size=64, progress=False)
    run = RunFolder(tmp_path / "runs ü" / "première")
    code = runner.main(
        [
            "--profile",
            "smoke",
            "--models",
            "custom_cnn",
            "--data",
            str(data),
            "--run-dir",
            str(run),
            "--only",
            "01,02,03,04",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "custom_cnn epoch 1/1" in out
    train = load_records(run.train_table)
    assert train["image"].str.contains("démo faces.zip|première", regex=True).all()
    for image in train["image"].head(5):
        assert read_image(image).ndim == 3

    photos = tmp_path / "my photos ☺"
    photos.mkdir()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(photos / "été 2026.png")
    rows = predict_images(run.model_path("custom_cnn"), [photos], detect=False, progress=False)
    assert rows["status"].tolist() == ["ok"] and rows["file"].iloc[0].endswith("été 2026.png")
