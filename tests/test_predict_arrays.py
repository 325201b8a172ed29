"""In-memory inputs of the predictor: Pillow images read as their files are, arrays of another
shape or of doubtful levels named in their row or in a warning, never read wrongly unnoticed."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.core.errors import ConfigError
from helpers.core.labels import EXPRESSIONS
from helpers.inference.predict import predict_images


class Recorder:
    """A Backend without TensorFlow that keeps every input it was given."""

    def __init__(self, size: int = 32, channels: int = 3):
        self.metadata = {
            "name": "recorder",
            "image_size": size,
            "channels": channels,
            "heads": ["expression"],
            "labels": list(EXPRESSIONS),
        }
        self.seen: list[np.ndarray] = []

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        self.seen.extend(np.array(images))
        return {"expression": np.full((len(images), 8), 1 / 8)}


def _inputs(inputs) -> tuple[list[np.ndarray], object]:
    """What the model received for the inputs with detect=False, and the table."""
    model = Recorder()
    table = predict_images(model, inputs, detect=False, progress=False)
    return model.seen, table


def _photo(seed: int = 0) -> np.ndarray:
    """A small RGB picture with distinct channels, wider than tall."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)


def _saved(tmp_path: Path) -> dict[str, Path]:
    """One file per Pillow mode the predictor reads, each in a format that stores the mode."""
    rgb = Image.fromarray(_photo())
    gray16 = (np.asarray(rgb.convert("L")).astype(np.uint16) * 257 + 3).astype(np.uint16)
    images = {
        "L.png": rgb.convert("L"),
        "RGB.png": rgb,
        "RGBA.png": Image.fromarray(np.dstack([_photo(), np.full((24, 36), 7, np.uint8)])),
        "P.png": rgb.convert("P"),
        "I16.png": Image.fromarray(gray16),
        "CMYK.jpg": rgb.convert("CMYK"),
        "LA.png": rgb.convert("LA"),
        "1.png": rgb.convert("1"),
    }
    paths = {}
    for name, image in images.items():
        paths[name] = tmp_path / name
        image.save(paths[name])
    return paths


def test_pillow_images_of_every_usual_mode_reach_the_model_as_their_files_do(tmp_path):
    paths = _saved(tmp_path)
    with Image.open(paths["I16.png"]) as opened:
        assert opened.mode.startswith("I")  # the 16-bit case is the one this test means
    from_files, _ = _inputs(list(paths.values()))
    pictures = [Image.open(p) for p in paths.values()]
    try:
        from_pictures, table = _inputs(pictures)
    finally:
        for picture in pictures:
            picture.close()
    assert list(table["status"]) == ["ok"] * len(paths)
    assert list(table["file"]) == [f"<image {i}>" for i in range(len(paths))]
    for name, a, b in zip(paths, from_files, from_pictures, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_a_pillow_image_alone_or_made_in_memory_is_an_input_too():
    picture = Image.fromarray(_photo())
    alone, table = _inputs(picture)
    assert list(table["file"]) == ["<image 0>"]
    as_array, _ = _inputs([_photo()])
    np.testing.assert_array_equal(alone[0], as_array[0])


def test_a_pillow_image_is_turned_upright_as_its_file_is(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, shown turned 90 degrees clockwise
    path = tmp_path / "sideways.png"
    Image.fromarray(_photo()).save(path, exif=exif)
    from_file, _ = _inputs([path])
    with Image.open(path) as picture:
        from_picture, _ = _inputs([picture])
    np.testing.assert_array_equal(from_file[0], from_picture[0])
    unturned, _ = _inputs([_photo()])
    assert not np.array_equal(from_picture[0], unturned[0])


def test_a_pillow_image_of_a_truncated_file_is_an_error_row_not_a_stop(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(_photo()).save(path)
    path.write_bytes(path.read_bytes()[:-400])
    with Image.open(path) as picture:  # opened lazily: the pixels are read by the predictor
        seen, table = _inputs([picture, _photo()])
    assert list(table["status"]) == ["error", "ok"] and len(seen) == 1
    assert table["error"].iloc[0].startswith("<image 0>: Pillow image of mode RGB cannot be read")


def test_inputs_of_another_type_name_pillow_images_among_those_accepted():
    with pytest.raises(ConfigError, match=r"an RGB image array, a Pillow image, or a list"):
        predict_images(Recorder(), 1.5, detect=False, progress=False)


def test_a_gray_batch_and_a_channels_first_array_get_a_row_saying_how_to_pass_them():
    gray_batch = np.zeros((5, 30, 30), np.uint8)
    chw = np.zeros((3, 30, 30), np.uint8)
    seen, table = _inputs([gray_batch, chw, np.zeros((30, 30, 3), np.uint8)])
    assert list(table["status"]) == ["error", "error", "ok"] and len(seen) == 1
    first, second = table["error"].iloc[:2]
    assert "<array 0>" in first and "batch of 5 gray images" in first
    assert "list(array) or array[..., None]" in first
    assert "<array 1>" in second and "array.transpose(1, 2, 0)" in second
    seen, table = _inputs(list(gray_batch))  # as the row says: five gray images
    assert list(table["status"]) == ["ok"] * 5


def test_doubtful_levels_are_read_with_a_warning_not_unnoticed():
    eight_bit = _photo()
    with pytest.warns(UserWarning, match=r"<array 0>: uint16 values all at most 255"):
        wide, _ = _inputs([eight_bit.astype(np.uint16)])
    narrow, _ = _inputs([eight_bit])
    np.testing.assert_array_equal(wide[0], narrow[0])
    with pytest.warns(UserWarning, match=r"<array 0>: float32 values only 0 and 1"):
        _inputs([np.ones((30, 30, 3), np.float32)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _inputs([eight_bit / 255.0, eight_bit.astype(np.uint16) * 257])
