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
