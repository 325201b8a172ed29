"""An image as the model sees it, one path for training, evaluation, export and prediction.

Gray models get Pillow's 'L' conversion, every image is fitted to size x size by
helpers.core.images.fit_square, and the model receives raw 0-255 floats (it holds its own
rescaling layer). A training image and the same face cropped by the predictor therefore reach
the network as the same numbers. A non-square image is stretched to the square, neither cropped
nor padded: training fits its stored images so, and the predictor's own face crops are square.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from helpers.core.errors import DataError
from helpers.core.images import fit_square, read_image, read_image_reduced

# Half a level of either scale: a float image resized or blurred strays this far past its range.
_SLACK_01, _SLACK_255 = 0.5 / 255, 0.5


def _as_uint8(image: np.ndarray, where: str) -> np.ndarray:
    """The 0-255 levels of an array of any numeric dtype, by the rule as_rgb states; a
    DataError naming the dtype and the values found where no rule reads them as an image."""
    kind = image.dtype.kind
    if kind == "b":
        raise DataError(
            where, "boolean array (a mask?), not an image: give uint8 0-255 or float 0-1 values"
        )
    if kind not in "uif":
        raise DataError(where, f"array of dtype {image.dtype}, not numbers: not an image")
    if image.dtype == np.uint16 and image.size and int(image.max()) <= 255:
        warnings.warn(
            f"{where}: uint16 values all at most 255, read as 0-255 levels (8-bit data in a "
            "16-bit array); as a 16-bit image it would be black. A 16-bit image this dark: "
            "give array / 65535 as floats",
            UserWarning,
            stacklevel=2,
        )
        return image.astype(np.uint8)
    if image.dtype == np.uint16:  # a 16-bit image, as a 16-bit PNG is read
        return ((image.astype(np.int64) + 128) // 257).astype(np.uint8)
    values = image.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        bad = ", ".join(
            name
            for name, hit in (
                ("NaN", np.isnan(values).any()),
                ("inf", np.isposinf(values).any()),
                ("-inf", np.isneginf(values).any()),
            )
            if hit
        )
        raise DataError(
            where, f"{image.dtype} array holds {bad} ({(~finite).sum():,} values): not an image"
        )
    low, high = float(values.min()), float(values.max())
    if kind == "f" and low >= -_SLACK_01 and high <= 1 + _SLACK_01:
        if high == 1.0 and np.array_equal(values, np.rint(values)):
            warnings.warn(
                f"{where}: {image.dtype} values only 0 and 1, read as 0-1 levels (1 is white); "
                "a 0-255 frame this dark would be black: give it as uint8",
                UserWarning,
                stacklevel=2,
            )
        values = values * 255.0  # 0-1 floats: what skimage, matplotlib and img / 255 give
    elif not (low >= -_SLACK_255 and high <= 255 + _SLACK_255):
        scale = "0-1 or 0-255" if kind == "f" else "0-255"
        raise DataError(
            where,
            f"{image.dtype} values from {low:g} to {high:g}: an image array holds {scale} "
            "(uint16: 0-65535)",
        )
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _shape_hint(shape: tuple[int, ...]) -> str:
    """What an array that is not one (H, W[, 1|3|4]) image most likely is, and how to pass it:
    a batch of gray images (N, H, W), channels first (C, H, W, PyTorch's layout), gray with
    alpha (H, W, 2), a batch given inside a list."""
    if len(shape) == 4:
        return f": a batch of {shape[0]} images? pass the array itself, not in a list"
    if len(shape) != 3:
        return ""
    if shape[2] == 2:
        return ": gray and alpha? pass array[..., 0]"
    if min(shape[1:]) < 8:  # no face fits in fewer pixels: not an image of them
        return ""
    batch = f"a batch of {shape[0]} gray images? pass list(array) or array[..., None]"
    if shape[0] in (1, 3, 4):
        return f": channels first? use array.transpose(1, 2, 0); {batch}"
    return f": {batch}"


def as_rgb(image: np.ndarray, where: str) -> np.ndarray:
    """uint8 (H, W, 3) RGB from a gray, gray+1 or RGB(A) image array, its levels read by dtype,
    so an image in any usual form reaches the model as the same 0-255 pixels.

    Colour arrays are in RGB order, as Pillow, imageio, skimage and matplotlib give them;
    OpenCV's cv2.imread and VideoCapture give BGR: pass cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).
    uint8 as is; uint16 as a 16-bit image (0-65535, divided by 257, as a 16-bit PNG is read),
    or as 0-255 levels where every value is at most 255 (with a warning); other integers 0-255;
    floats 0-1 (skimage, matplotlib: times 255) when every value lies in [0, 1] (a warning
    where they are only 0 and 1, which may be a near-black 0-255 frame), else 0-255. Booleans,
    NaN or inf, and values outside these ranges are a DataError naming the dtype and the values
    found, never a black or white picture; so is any other shape, saying what it looks like.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise DataError(
            where,
            f"expected an image array (H, W[, 1|3|4]), got shape {image.shape}"
            + _shape_hint(image.shape),
        )
    if image.dtype != np.uint8:
        image = _as_uint8(image[..., :3], where)
    return np.ascontiguousarray(image[..., :3])


def to_model_input(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """float32 (size, size, channels) raw 0-255 pixels of an image array (a crop, a frame)."""
    image = as_rgb(image, "<image>")
    if channels == 1:
        image = np.asarray(Image.fromarray(image).convert("L"))
    image = fit_square(image, size)
    return image.reshape(size, size, channels).astype(np.float32)


def decode_for_model(uri: str, size: int, channels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 (size, size, channels) image of a stored file and its stored (height, width).

    A JPEG at least twice the input size decodes at 1/2, 1/4 or 1/8 scale first (see
    helpers.core.images.decode_image_reduced), then resizes like any other image.
    """
    image, (h, w) = read_image_reduced(uri, size, mode="gray" if channels == 1 else "rgb")
    image = fit_square(image, size)
    return image.reshape(size, size, channels), (h, w)


def decode_changed(
    uri: str, size: int, channels: int, change: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, tuple[int, int]]:
    """As decode_for_model, with the stored image changed at its own resolution first (a
    corruption of the photo, helpers.evaluation.corruptions), so models of every input size
    meet the same changed pixels. Decoded whole: no reduced JPEG decoding before the change."""
    image = read_image(uri, mode="gray" if channels == 1 else "rgb")
    height, width = image.shape[:2]
    changed = change(image.reshape(height, width, channels))
    return fit_square(changed.reshape(image.shape), size).reshape(size, size, channels), (
        height,
        width,
    )


def model_inputs(uris: Sequence[str], size: int, channels: int) -> np.ndarray:
    """float32 inputs of stored images exactly as training saw them (evaluation, export)."""
    return np.stack([decode_for_model(u, size, channels)[0] for u in uris]).astype(np.float32)
