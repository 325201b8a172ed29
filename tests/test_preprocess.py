"""Image arrays of every usual dtype reach the model as the same 0-255 pixels, or are refused."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from helpers.core.errors import DataError
from helpers.core.preprocess import as_rgb

LEVELS = np.arange(256, dtype=np.uint8).reshape(16, 16)


@pytest.mark.parametrize(
    "array",
    [
        LEVELS / 255.0,  # skimage, matplotlib
        (LEVELS / 255.0).astype(np.float32),
        LEVELS.astype(np.float64),  # 0-255 floats
        LEVELS.astype(np.uint16) * 257,  # a 16-bit image
        LEVELS.astype(np.int64),
    ],
    ids=["float 0-1", "float32 0-1", "float 0-255", "uint16", "int64"],
)
def test_each_dtype_gives_the_uint8_levels(array):
    np.testing.assert_array_equal(as_rgb(array, "<a>"), np.repeat(LEVELS[..., None], 3, axis=2))


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.full((8, 8, 3), np.nan), ["<a>", "float64", "NaN"]),
        (np.full((8, 8), np.inf, np.float32), ["<a>", "float32", "inf"]),
        (np.ones((8, 8), bool), ["<a>", "boolean"]),
        (np.full((8, 8), 300.0), ["<a>", "float64", "300", "0-1 or 0-255"]),
        (np.full((8, 8), -5, np.int32), ["<a>", "int32", "-5"]),
        (np.full((8, 8), "x", object), ["<a>", "object"]),
    ],
    ids=["nan", "inf", "bool", "float over 255", "negative int", "object"],
)
def test_arrays_no_rule_reads_are_refused_by_dtype_and_values(array, words):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no bare RuntimeWarning from a cast
        with pytest.raises(DataError) as caught:
            as_rgb(array, "<a>")
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ((5, 48, 48), ["batch of 5 gray images", "list(array)", "array[..., None]"]),
        ((3, 48, 48), ["channels first", "array.transpose(1, 2, 0)", "batch of 3 gray"]),
        ((1, 48, 48), ["channels first", "array.transpose(1, 2, 0)"]),
        ((48, 48, 2), ["gray and alpha", "array[..., 0]"]),
        ((2, 48, 48, 3), ["batch of 2 images", "not in a list"]),
    ],
    ids=["gray batch", "channels first", "one channel first", "gray and alpha", "batch in a list"],
)
def test_an_array_of_another_shape_is_refused_saying_what_it_looks_like(shape, words):
    with pytest.raises(DataError) as caught:
        as_rgb(np.zeros(shape, np.uint8), "<a>")
    message = str(caught.value)
    assert "<a>" in message and str(shape) in message
    for word in words:
        assert word in message


def test_a_colour_image_of_any_size_stays_one_image():
    for shape in [(5, 48, 3), (3, 48, 3), (48, 5, 4), (4, 4, 3)]:
        assert as_rgb(np.zeros(shape, np.uint8), "<a>").shape == (*shape[:2], 3)
    with pytest.raises(DataError) as caught:  # five channels: not called a batch of 48 images
        as_rgb(np.zeros((48, 48, 5), np.uint8), "<a>")
    assert "batch" not in str(caught.value)


def test_uint16_holding_8_bit_levels_is_read_as_them_with_a_warning():
    with pytest.warns(UserWarning, match=r"<a>: uint16 values all at most 255"):
        got = as_rgb(LEVELS.astype(np.uint16), "<a>")
    np.testing.assert_array_equal(got, np.repeat(LEVELS[..., None], 3, axis=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a 16-bit image reaching past 255 is read quietly
        as_rgb(LEVELS.astype(np.uint16) * 257, "<a>")


def test_floats_of_only_0_and_1_warn_that_they_may_be_a_dark_0_255_frame():
    with pytest.warns(UserWarning, match=r"<a>: float32 values only 0 and 1"):
        got = as_rgb(np.ones((8, 8, 3), np.float32), "<a>")
    assert (got == 255).all()  # read as 0-1, as the rule says
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0-1 levels between, or an all-black frame: no warning
        as_rgb(LEVELS / 255.0, "<a>")
        as_rgb(np.zeros((8, 8)), "<a>")


def test_the_channel_order_is_stated_where_arrays_are_described():
    """OpenCV gives BGR: a reader of as_rgb or the README must learn that arrays are RGB."""
    from helpers.core import paths

    doc = " ".join((as_rgb.__doc__ or "").split())
    readme = " ".join((paths.REPO_ROOT / "README.md").read_text(encoding="utf-8").split())
    for text in (doc, readme):
        assert "RGB order" in text and "cv2.COLOR_BGR2RGB" in text


def test_a_non_square_image_is_stretched_as_training_fits_its_images(tmp_path):
    """detect=False hands the model the whole image: stretched to the square exactly as a
    stored training image of that shape is, neither cropped nor padded."""
    from PIL import Image

    from helpers.core import preprocess
    from helpers.core.preprocess import decode_for_model, to_model_input

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "wide.png")
    stored, _ = decode_for_model(str(tmp_path / "wide.png"), 48, 3)
    np.testing.assert_array_equal(to_model_input(image, 48, 3), stored.astype(np.float32))
    assert "stretched" in (preprocess.__doc__ or "")
