"""Grad-CAM: where in the face a model finds the evidence for what it predicts.

For a chosen head, the gradient of its score with respect to the backbone's last convolutional
feature map, averaged over the map, weights each channel of that map (Selvaraju et al., 2017,
"Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization"):

    cam = sum_k alpha_k * A_k,   alpha_k = mean over the map of d score / d A_k

upsampled (bilinear) to the input size. The score is the head's value before its activation,
so a confident softmax or a saturated tanh does not flatten the gradient:

- expression: the logit of a class (the predicted one unless given); cam is rectified (only
  evidence FOR the class) and divided by its maximum, so each map lies in [0, 1]; a map with no
  positive evidence anywhere is all zeros.
- valence, arousal: the regression value; cam is kept signed and divided by its largest
  magnitude, so each map lies in [-1, 1]: positive where the features push the output up,
  negative where they push it down.

Which feature map is read from the model graph, so a new architecture needs no code here: the
output of the nested backbone (helpers.models.backbones.BACKBONE_LAYER), looking back through
trailing pooling and dropout (they compute no features: the custom CNN and VGG16 end in
max-pooling, and the map before it has twice the resolution, as the original paper uses for
VGG). When that map is a single cell (a stride-32 backbone such as ResNet50 at 32 px), Grad-CAM
of it would be one value spread over the whole face, so the last map of at least `min_side`
cells a side is used instead (the end of the stage before); `Explainer.layer` names it.

Written by hand with tf.GradientTape because no library fits these models: eli5 (0.16, which
added Keras 3 in 2025) explains one image at a time from a layer of the outer model and a class
probability, so it cannot reach the feature map inside the nested backbone,
flattens on confident predictions and has no signed map for regression; tf-keras-vis (last
release 2024) is built on tf.keras, Keras 2. Grad-CAM++ is not used: it re-weights the gradient
map so that several objects of one class in an image all light up; a face crop holds one face,
so plain Grad-CAM, the reference method, is kept. Deterministic: no sampling, the model runs in
inference mode, and each image's map depends only on that image.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.core.errors import ConfigError

if TYPE_CHECKING:
    import keras

EXPLAINED_HEADS = ("expression", "valence", "arousal")
SIGNED_HEADS = frozenset({"valence", "arousal"})
MIN_SIDE = 2  # a feature map of one cell cannot say where anything is
# The heat's colour map wherever a heatmap is drawn (the predictor's overlays, the notebooks'
# and the report's panels): perceptually uniform (equal steps look equal, colour-blind safe),
# unlike a rainbow map.
HEAT_CMAP = "magma"


@dataclass(frozen=True)
class Heatmaps:
    """Grad-CAM maps of a batch and what they explain."""

    maps: np.ndarray  # (N, S, S) float32 at the model's input size: [0, 1], or [-1, 1] if signed
    head: str
    targets: np.ndarray  # (N,) the class explained per image (expression), else -1
    outputs: np.ndarray  # (N,) that class's probability, or the head's value (valence, arousal)
    layer: str  # the feature map read, as "<layer> <h>x<w>"
    signed: bool


def _no_features(layer: Any) -> bool:
    """Layers that move or drop features without computing new ones."""
    from keras import layers

    passive = (
        layers.Dropout,
        layers.SpatialDropout2D,
        layers.GaussianDropout,
        layers.GaussianNoise,
        layers.MaxPooling2D,
        layers.AveragePooling2D,
        layers.ZeroPadding2D,
        layers.Cropping2D,
        layers.InputLayer,
    )
    return isinstance(layer, passive)


def _spatial(tensor: Any) -> tuple[int, int] | None:
    """(height, width) of a 4-D feature map tensor with known size, else None."""
    shape = tuple(tensor.shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


def feature_map(backbone: keras.Model, min_side: int = MIN_SIDE) -> tuple[Any, str]:
    """The symbolic feature map Grad-CAM reads inside a backbone, and its layer's name."""
    tensor = backbone.output
    layer = tensor._keras_history.operation
    while _no_features(layer) and not isinstance(layer.input, (list, tuple)):
        tensor = layer.input
        layer = tensor._keras_history.operation
    side = _spatial(tensor)
    if side is None:
        raise ConfigError(
            f"backbone {backbone.name!r}: its output is not a 2-D feature map "
            f"(shape {tuple(tensor.shape)}), so Grad-CAM has nothing to localise"
        )
    if min(side) >= min_side:
        return tensor, layer.name
    for candidate in reversed(backbone.layers):
        if _no_features(candidate):
            continue
        try:
            output = candidate.output
        except (AttributeError, ValueError):  # a layer used more than once has no one output
            continue
        found = None if isinstance(output, (list, tuple)) else _spatial(output)
        if found is not None and min(found) >= min_side:
            return output, candidate.name
    return tensor, layer.name  # no finer map exists: the input is tiny


def _pre_activation(dense: Any) -> Any:
    """A layer giving a Dense head's value before its activation, from the head's own kernel
    and bias (so it follows the model's weights)."""
    from keras import layers, ops

    def linear(x: Any) -> Any:
        z = ops.matmul(ops.cast(x, dense.kernel.dtype), dense.kernel)
        return z if dense.bias is None else z + dense.bias

    return layers.Lambda(linear, name=f"{dense.name}_pre_activation")


def _check_images(images: Any, shape: tuple[int, ...]) -> np.ndarray:
    """float32 (N, S, S, C) pixels the model takes, or one ConfigError saying what came."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == len(shape) - 1:
        x = x[None]
    if x.shape[1:] != shape[1:]:
        raise ConfigError(
            f"Grad-CAM: images must be (N, {', '.join(str(s) for s in shape[1:])}) "
            f"raw 0-255 pixels for this model, got shape {x.shape}"
        )
    return x


def _window(backbone: Any, size: tuple) -> tuple[tuple[int, int], tuple[int, int]]:
    """Pixels of the image outside what the network sees ((top, bottom), (left, right)): a
    custom CNN with `train_crop` sees the centre window, so its map covers that window only."""
    try:
        crop = backbone.get_layer("train_crop").size
    except ValueError:
        return (0, 0), (0, 0)
    pads = [((int(s) - crop) // 2, int(s) - crop - (int(s) - crop) // 2) for s in size]
    return pads[0], pads[1]


def check_backend() -> None:
    """Grad-CAM takes its gradients with tf.GradientTape: on another Keras backend (JAX, PyTorch)
    a ConfigError says so before any work, not an error from deep inside the tape."""
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ConfigError(
            f"Grad-CAM needs the TensorFlow Keras backend; this process runs {backend} "
            f"(KERAS_BACKEND={os.environ.get('KERAS_BACKEND', '')}): unset KERAS_BACKEND"
        )


class Explainer:
    """Grad-CAM for a model built by helpers.models.factory (or loaded by load_trained).

    Built once per model (it shares the model's weights, nothing is copied), then called on
    batches: `Explainer(model)(images, head="expression", target=None) -> Heatmaps`.
    """

    def __init__(self, model: keras.Model, min_side: int = MIN_SIDE):
        import keras
        from keras import layers

        from helpers.models.backbones import BACKBONE_LAYER

        check_backend()

        try:
            backbone = model.get_layer(BACKBONE_LAYER)
        except ValueError:
            raise ConfigError(
                f"model {model.name!r} has no {BACKBONE_LAYER!r} layer: Grad-CAM needs a model "
                "built by helpers.models.factory.build_model"
            ) from None
        features, name = feature_map(backbone, min_side)
        inner = keras.Model(backbone.inputs, [features, backbone.output], name="explained")
        found: dict[str, Any] = {}

        def call(layer: Any, *args: Any, **kwargs: Any) -> Any:
            """Run the model's graph again, keeping the feature map and pre-activations."""
            if layer is backbone:
                found["features"], out = inner(*args, **kwargs)
                return out
            if layer.name in EXPLAINED_HEADS:
                found[layer.name] = (
                    _pre_activation(layer)(*args) if isinstance(layer, layers.Dense) else None
                )
                output = layer(*args, **kwargs)
                found[layer.name] = output if found[layer.name] is None else found[layer.name]
                return output
            return layer(*args, **kwargs)

        # The same layers and weights, called again: nothing is copied.
        clone = keras.models.clone_model(
            model, clone_function=lambda layer: layer, call_function=call
        )
        self.heads = tuple(h for h in EXPLAINED_HEADS if h in found)
        self.layer = f"{name} {'x'.join(str(s) for s in _spatial(found['features']) or ())}"
        self.input_shape = tuple(model.input_shape)
        self.window = _window(backbone, self.input_shape[1:3])
        self.model_name = model.name
        self._net = keras.Model(
            clone.input, [found["features"], {h: found[h] for h in self.heads}, clone.output]
        )

    def _targets(self, target: Any, n: int, n_classes: int) -> np.ndarray | None:
        """Class index per image, or None for the predicted class; out of range is an error."""
        if target is None:
            return None
        t = (
            np.broadcast_to(np.asarray(target), (n,))
            if np.ndim(target) == 0
            else np.asarray(target)
        )
        if t.shape != (n,) or not np.issubdtype(t.dtype, np.integer):
            raise ConfigError(
                f"Grad-CAM: target must be a class index or one per image ({n}), got {target!r}"
            )
        if ((t < 0) | (t >= n_classes)).any():
            raise ConfigError(f"Grad-CAM: class indices must be in 0..{n_classes - 1}, got {t}")
        return t.astype(np.int64)

    def _batch(
        self, x: np.ndarray, head: str, target: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(maps at feature resolution, targets, outputs) of one batch."""
        import tensorflow as tf

        with tf.GradientTape() as tape:
            features, z, outputs = self._net(tf.convert_to_tensor(x), training=False)
            zh = tf.cast(z[head], tf.float32)
            if head == "expression":
                chosen = tf.argmax(zh, axis=1) if target is None else tf.constant(target)
                score = tf.gather(zh, chosen, axis=1, batch_dims=1)
            else:
                chosen = tf.fill([tf.shape(zh)[0]], tf.constant(-1, tf.int64))
                score = zh[:, 0]
            total = tf.reduce_sum(score)  # images are independent in inference mode
        grads = tf.cast(tape.gradient(total, features), tf.float32)
        features = tf.cast(features, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.reduce_sum(weights * features, axis=-1).numpy().astype(np.float64)
        out = np.asarray(outputs[head], dtype=np.float64)
        chosen_np = np.asarray(chosen, dtype=np.int64)
        value = (
            out[np.arange(len(out)), chosen_np] if head == "expression" else out.reshape(len(out))
        )
        return cam, chosen_np, value

    def __call__(
        self,
        images: Any,
        head: str = "expression",
        target: int | Sequence[int] | np.ndarray | None = None,
        batch_size: int = 32,
    ) -> Heatmaps:
        """Grad-CAM of `head` for a batch of raw 0-255 images (N, S, S, C) or one image.

        target: for the expression head, the class to explain (an index, or one per image);
        None explains each image's predicted class. Valence and arousal take no target.
        """
        if head not in self.heads:
            raise ConfigError(
                f"Grad-CAM: model {self.model_name!r} has no {head!r} head to explain "
                f"(it has {', '.join(self.heads) or 'none'})"
            )
        if head != "expression" and target is not None:
            raise ConfigError(f"Grad-CAM: {head} is a single value; it takes no target class")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"Grad-CAM: batch_size must be an integer >= 1, got {batch_size!r}")
        x = _check_images(images, self.input_shape)
        n_classes = int(self._net.output[1][head].shape[-1])
        targets = self._targets(target, len(x), n_classes)
        cams, chosen, values = [], [], []
        for start in range(0, len(x), batch_size):
            stop = start + batch_size
            cam, c, v = self._batch(
                x[start:stop], head, None if targets is None else targets[start:stop]
            )
            cams.append(cam)
            chosen.append(c)
            values.append(v)
        signed = head in SIGNED_HEADS
        cam = np.concatenate(cams) if cams else np.zeros((0, 1, 1))
        (top, bottom), (left, right) = self.window
        side = (int(self.input_shape[1]) - top - bottom, int(self.input_shape[2]) - left - right)
        maps = np.pad(
            upsample(normalise(cam, signed), side), ((0, 0), (top, bottom), (left, right))
        )
        return Heatmaps(
            maps=maps,
            head=head,
            targets=np.concatenate(chosen) if chosen else np.zeros(0, np.int64),
            outputs=np.concatenate(values) if values else np.zeros(0),
            layer=self.layer,
            signed=signed,
        )


def normalise(cam: np.ndarray, signed: bool) -> np.ndarray:
    """Each map divided by its largest value: rectified into [0, 1], or signed into [-1, 1]."""
    cam = np.asarray(cam, dtype=np.float64)
    if not signed:
        cam = np.maximum(cam, 0.0)
    peak = np.abs(cam).reshape(len(cam), -1).max(axis=1) if cam.size else np.zeros(len(cam))
    scale = np.where(peak > 0, peak, 1.0).reshape(-1, *([1] * (cam.ndim - 1)))
    return (cam / scale).astype(np.float32)


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) maps resized to (N, H, W), bilinear with the pixel-centre convention."""
    import cv2

    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[1:] == size:
        return maps
    out = np.empty((len(maps), *size), dtype=np.float32)
    for i, m in enumerate(maps):
        out[i] = cv2.resize(m, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    lo, hi = (-1.0, 1.0) if (maps < 0).any() else (0.0, 1.0)
    return np.clip(out, lo, hi)


def gradcam(
    model: keras.Model,
    images: Any,
    head: str = "expression",
    target: int | Sequence[int] | np.ndarray | None = None,
    batch_size: int = 32,
) -> Heatmaps:
    """Grad-CAM of one model on a batch, for a single call (build an Explainer to reuse it)."""
    return Explainer(model)(images, head=head, target=target, batch_size=batch_size)


@functools.lru_cache(maxsize=1)
def heat_colours() -> np.ndarray:
    """HEAT_CMAP as a (256, 3) uint8 RGB table, so overlays show the report's colour scale;
    made once (read-only), as overlay asks for it per face."""
    from matplotlib import colormaps

    rgba = colormaps[HEAT_CMAP](np.linspace(0.0, 1.0, 256))
    table = np.rint(rgba[:, :3] * 255).astype(np.uint8)
    table.setflags(write=False)
    return table


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    region: tuple[int, int, int, int] | None = None,
    strength: float = 0.6,
) -> np.ndarray:
    """A copy of the RGB image with a [0, 1] heatmap blended in (HEAT_CMAP's colours, as the
    report's, opacity rising with the heat) over `region` (x, y, w, h; the whole image when
    None), clipped to the image."""
    import cv2

    from helpers.core.preprocess import as_rgb

    canvas = as_rgb(image, "<image>").copy()
    h_img, w_img = canvas.shape[:2]
    x0, y0, rw, rh = region if region is not None else (0, 0, w_img, h_img)
    if rw < 1 or rh < 1:
        return canvas
    heat = cv2.resize(
        np.clip(np.asarray(heatmap, np.float32), 0, 1), (rw, rh), interpolation=cv2.INTER_LINEAR
    )
    colour = heat_colours()[np.rint(heat * 255).astype(np.uint8)]
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + rw, w_img), min(y0 + rh, h_img)
    if xa >= xb or ya >= yb:
        return canvas
    part = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
    alpha = (strength * heat[part])[..., None]
    base = canvas[ya:yb, xa:xb].astype(np.float32)
    blended = base * (1 - alpha) + colour[part].astype(np.float32) * alpha
    canvas[ya:yb, xa:xb] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
    return canvas
