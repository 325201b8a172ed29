"""Feature extractors: built from their registry entry, ImageNet weights fetched with a timeout
and a fallback, and what a randomly initialised one needs to learn."""

from __future__ import annotations

import inspect
import logging
import os
import socket
import warnings
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
from keras import layers, ops

from helpers.core.errors import ConfigError, one_line
from helpers.models import registry

log = logging.getLogger(__name__)

# BatchNorm momentum of a randomly initialised backbone. keras.applications use 0.99 (0.999 in
# MobileNetV2), tuned for fine-tuning pretrained statistics: from scratch, after a few hundred
# steps the moving averages still hold mostly their 0/1 start (0.999**400 = 0.67), so inference
# mode, validation and the saved model see a dead network. 0.9 follows the weights within ~20
# steps (PyTorch's default).
SCRATCH_BN_MOMENTUM = 0.9
# The spread of ImageNet's pixels in 0-255 units: torchvision's normalisation standard deviations
# (0.229, 0.224, 0.225) times 255, averaged. A plain (BatchNorm-free) backbone's first layer is
# scaled by it, through its preprocessing's gain, so it starts near unit scale.
IMAGENET_PIXEL_STD = 57.6


BACKBONE_LAYER = "backbone"  # name of the nested feature extractor inside every model


def rescale_unit(x: Any) -> Any:
    """Bring raw 0-255 pixels to [0, 1] for the custom CNN, which has no ImageNet convention."""
    return x / 255.0


@keras.saving.register_keras_serializable(package="helpers")
class Preprocess(layers.Layer):
    """Raw pixels in, what the backbone expects out: saved models need no outside preprocessing."""

    def __init__(self, backbone: str, to_rgb: bool = False, **kwargs: Any):
        kwargs.setdefault("dtype", "float32")  # mean subtraction in float32 under mixed precision
        super().__init__(**kwargs)
        self._preprocess = registry.function(backbone, "preprocess")
        self.backbone = backbone
        self.to_rgb = bool(to_rgb)

    def call(self, x: Any) -> Any:
        """Replicate grayscale for ImageNet backbones, then their own preprocess_input."""
        x = ops.cast(x, self.compute_dtype)
        if self.to_rgb:
            x = ops.repeat(x, 3, axis=-1)
        return self._preprocess(x)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Only the channel count can change (gray -> RGB)."""
        return tuple(input_shape[:-1]) + ((3,) if self.to_rgb else (input_shape[-1],))

    def get_config(self) -> dict:
        """Keep backbone and replication so a loaded .keras model preprocesses identically."""
        return {**super().get_config(), "backbone": self.backbone, "to_rgb": self.to_rgb}


@keras.saving.register_keras_serializable(package="helpers")
class TrainCrop(layers.Layer):
    """Random crops inside the model: training sees each image's own random `size`-pixel
    window at full resolution, inference the centre window, so both give the network the same
    map sizes (44 px pools to 2x2 where 48 px pools to 3x3)."""

    def __init__(self, size: int, seed: int | None = None, **kwargs: Any):
        kwargs.setdefault("dtype", "float32")  # a gather: pixels pass unrounded
        super().__init__(**kwargs)
        self.size, self.seed = int(size), seed
        self._seeds = keras.random.SeedGenerator(seed)

    def call(self, x: Any, training: bool | None = None) -> Any:
        """Per-image offsets (the centre's in inference), then two gathers: no resampling."""
        batch, height, width = ops.shape(x)[0], x.shape[1], x.shape[2]
        window = ops.arange(self.size, dtype="int32")[None, :]
        picks = []
        for side in (height, width):
            if training:
                offset = keras.random.randint(
                    (batch, 1), 0, side - self.size + 1, dtype="int32", seed=self._seeds
                )
            else:
                offset = ops.full((batch, 1), (side - self.size) // 2, dtype="int32")
            picks.append(offset + window)
        x = ops.take_along_axis(x, picks[0][:, :, None, None], axis=1)
        return ops.take_along_axis(x, picks[1][:, None, :, None], axis=2)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """The window's side in place of the image's."""
        return (input_shape[0], self.size, self.size, *input_shape[3:])

    def get_config(self) -> dict:
        """The window's side and seed, so a loaded model crops as it did."""
        return {**super().get_config(), "size": self.size, "seed": self.seed}


@keras.saving.register_keras_serializable(package="helpers")
class FusedBatchNormalization(layers.BatchNormalization):
    """BatchNorm whose training step is TensorFlow's fused kernel. Keras 3 composes it from
    separate reductions and element-wise ops, cast to float32 under mixed precision: in
    bfloat16 on a CPU that was a third of the custom CNN's step (benchmarks/RESULTS.md, step).
    The same weights, moving averages and inference as Keras's layer; other backends, masks,
    renorm and other layouts take Keras's path."""

    def _fusable(self, inputs: Any, mask: Any) -> bool:
        """Whether TensorFlow's fused kernel computes exactly this layer's training step."""
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and self.scale
            and self.center
            and not self.renorm
            and not self.synchronized
        )

    def call(self, inputs: Any, training: bool | None = None, mask: Any = None) -> Any:
        """Batch statistics from the fused kernel in training; anything else is Keras's call."""
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            ops.cast(self.gamma, "float32"),
            ops.cast(self.beta, "float32"),
            epsilon=self.epsilon,
            is_training=True,
        )[:3]
        # The kernel returns the variance's unbiased estimate; Keras averages the batch's own.
        count = ops.cast(ops.prod(ops.shape(inputs)[:-1]), "float32")
        variance = variance * (count - 1.0) / count
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return ops.cast(y, self.compute_dtype)


# A .weights.h5 file addresses each layer's weights by its class's name: under Keras's name,
# files saved with either layer load into the other (weights from before the fused kernel too).
FusedBatchNormalization.__name__ = "BatchNormalization"


def with_norm(backbone: keras.Model, norm: type[layers.BatchNormalization]) -> keras.Model:
    """The backbone with every BatchNorm rebuilt as `norm` from its config, weights copied: how a
    keras.applications network gets the fused kernel (MobileNetV2's step 1.3 times the images/s
    on a CPU, benchmarks/RESULTS.md, step). The copy's initialisers run before the weights are
    copied, so the seed's later draws (a head built after it) differ from the unswapped one's."""
    norms = [x for x in backbone.layers if isinstance(x, layers.BatchNormalization)]
    if all(type(x) is norm for x in norms):
        return backbone

    def rebuilt(layer: keras.layers.Layer) -> keras.layers.Layer:
        """clone_model's copy of one layer, a BatchNorm as `norm`."""
        kind = norm if isinstance(layer, layers.BatchNormalization) else layer.__class__
        return kind.from_config(layer.get_config())

    clone = keras.models.clone_model(backbone, clone_function=rebuilt)
    clone.set_weights(backbone.get_weights())
    return clone


def _squeeze_excite(x: Any, filters: int, ratio: float, prefix: str) -> Any:
    """Each channel scaled by a gate the whole map decides: cheap global context for a VGG block."""
    gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"{prefix}_squeeze")(x)
    gate = layers.Dense(max(1, int(filters * ratio)), activation="relu", name=f"{prefix}_reduce")(
        gate
    )
    gate = layers.Dense(filters, activation="sigmoid", name=f"{prefix}_expand")(gate)
    return layers.Multiply(name=f"{prefix}_excite")([x, gate])


def _per_block(name: str, option: str, value: Any, blocks: int, valid: Any, wanted: str) -> tuple:
    """One number for every block or one per block, each checked, so a bad value fails naming
    the option before any layer is built."""
    number = (int, float, np.integer, np.floating)
    if isinstance(value, number):
        values: tuple = (value,) * blocks
    else:
        values = tuple(value) if isinstance(value, (list, tuple, np.ndarray)) else ()
    if len(values) != blocks or not all(
        isinstance(v, number) and not isinstance(v, bool) and valid(v) for v in values
    ):
        raise ConfigError(
            f"custom CNN {name!r}: {option} must be {wanted} ({blocks} blocks), got {value!r}"
        )
    return values


def custom_cnn(
    include_top: bool = False,
    weights: Any = None,
    input_shape: tuple[int, int, int] = (48, 48, 1),
    name: str = BACKBONE_LAYER,
    widths: tuple[int, ...] = (32, 64, 128, 256),
    convs: int | tuple[int, ...] = 2,
    block_dropout: float = 0.1,
    residual: bool = False,
    train_crop: int | None = None,
    se_ratio: float | tuple[float, ...] = 0.0,
    standardize: bool = False,
) -> keras.Model:
    """VGG-style extractor for 48 px faces, trained from scratch: per block `convs` 3x3 conv +
    BatchNorm + ReLU, 2x2 max-pooling and dropout rising by `block_dropout` a block. The default
    widths are fast on a CPU; `widths` (64, 128, 256, 512) is the VGGNet of Khaireddin & Chen
    (2021) for FER-2013. `convs` per block (one number or one per block) moves arithmetic
    between resolutions: on a CPU a conv at full resolution costs more per multiply than one on
    a small map with many channels (benchmarks/RESULTS.md, step). `residual` adds each block's
    input, through a 1x1 conv + BatchNorm to its width, to its last conv before the ReLU (a
    ResNet projection block with a VGG block's convs): 4% more weights, a fifth fewer images/s
    on a CPU, and behind the plain network on FER-2013 (benchmarks/RESULTS.md, levers).
    `train_crop` trains on a random window of that many pixels of each image and predicts on
    the centre window (TrainCrop): the published FER-2013 recipes' random crops. `se_ratio`
    above 0 (one share, or one per block) ends a block with a squeeze-and-excitation gate (Hu et
    al. 2018; keras.applications' EfficientNet names it the same): its channels reweighted per
    image by a bottleneck of that share of them over their global average. Few multiplies, yet on
    the last two blocks a fifth of the step on a CPU in bfloat16 (benchmarks/RESULTS.md).
    `standardize` takes each face (the window, with `train_crop`) to zero mean and unit variance
    over its own pixels first, as the FER-2013 challenge's winner did (Tang 2013): its lighting
    and contrast out of what the network has to learn, where BatchNorm normalises over the batch.

    Takes keras.applications' arguments so the registry builds it like any other; it has no
    classifier top and no published weights."""
    if include_top or weights not in (None, "imagenet"):
        raise ConfigError(f"{name}: builds the feature extractor only, without weights")
    per_block = _per_block(
        name,
        "convs",
        convs,
        len(widths),
        lambda n: isinstance(n, (int, np.integer)) and n >= 1,
        "an integer >= 1 or one such integer per block",
    )
    if (
        isinstance(block_dropout, bool)
        or not isinstance(block_dropout, (int, float))
        or not 0.0 <= block_dropout * len(widths) < 1.0
    ):
        raise ConfigError(
            f"custom CNN {name!r}: block_dropout must be >= 0 with "
            f"{len(widths)} x block_dropout < 1, got {block_dropout!r}"
        )
    for flag, value in (("residual", residual), ("standardize", standardize)):
        if not isinstance(value, bool):
            raise ConfigError(f"custom CNN {name!r}: {flag} must be true or false, got {value!r}")
    if train_crop is not None and (
        isinstance(train_crop, bool)
        or not isinstance(train_crop, (int, np.integer))
        or not 1 <= train_crop < min(input_shape[:2])
    ):
        raise ConfigError(
            f"custom CNN {name!r}: train_crop must be a whole number of pixels below the input's "
            f"side ({min(input_shape[:2])}), got {train_crop!r}"
        )
    se_per_block = _per_block(
        name,
        "se_ratio",
        se_ratio,
        len(widths),
        lambda r: 0 <= r <= 1,
        "between 0 and 1, or one such share per block",
    )
    inputs = keras.Input(input_shape)
    x = inputs if train_crop is None else TrainCrop(int(train_crop), name="train_crop")(inputs)
    if standardize:  # Keras's layer norm over each image, no scale or offset; float32 moments
        x = layers.LayerNormalization(
            axis=(1, 2, 3),
            center=False,
            scale=False,
            epsilon=1e-6,
            dtype="float32",
            name="standardize",
        )(x)
    blocks = zip(widths, per_block, se_per_block, strict=True)
    for block, (filters, n_convs, ratio) in enumerate(blocks, start=1):
        if residual:  # before the branch, so zero-gamma (prepare_from_scratch) finds the branch
            shortcut = layers.Conv2D(filters, 1, use_bias=False, name=f"block{block}_shortcut")(x)
            shortcut = FusedBatchNormalization(name=f"block{block}_shortcut_bn")(shortcut)
        for conv in range(1, int(n_convs) + 1):
            x = layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}"
            )(x)
            x = FusedBatchNormalization(name=f"block{block}_bn{conv}")(x)
            if residual and conv == n_convs:
                x = layers.Add(name=f"block{block}_add")([shortcut, x])
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        if ratio > 0:
            x = _squeeze_excite(x, filters, ratio, f"block{block}_se")
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = layers.Dropout(block_dropout * block, name=f"block{block}_dropout")(x)
    return keras.Model(inputs, x, name=name)


# Arguments the factory sets itself (or that would give keras.applications a top or a pooling
# of its own): not backbone options.
RESERVED_BUILDER_ARGS = (
    "include_top",
    "weights",
    "input_shape",
    "name",
    "input_tensor",
    "pooling",
    "classes",
    "classifier_activation",
)


def builder_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """A model's backbone options checked against its builder's own arguments, so a typo
    fails naming the valid ones instead of deep inside keras.applications."""
    options = {} if options is None else options
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise ConfigError(f"{name}: backbone_options must map argument names to values")
    parameters = inspect.signature(registry.function(name, "builder")).parameters
    valid = sorted(p for p in parameters if p not in RESERVED_BUILDER_ARGS and p != "kwargs")
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"{name}: unknown backbone option(s) {unknown}; its builder takes {valid}"
        )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


def _construct(
    entry: registry.ModelSpec,
    input_shape: tuple,
    weights: str | None,
    options: Mapping[str, Any] | None = None,
) -> keras.Model:
    """The feature extractor an entry names, without its classifier top."""
    build = registry.function(entry.name, "builder")
    return build(
        include_top=False,
        weights=weights,
        input_shape=input_shape,
        name=BACKBONE_LAYER,
        **{**entry.builder_kwargs, **(options or {})},
    )


def _imagenet_backbone(
    entry: registry.ModelSpec, input_shape: tuple, timeout_s: float, options: Mapping[str, Any]
) -> keras.Model:
    """Ask keras for ImageNet weights (its cache in ~/.keras/models first) without hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # keras.applications downloads have no timeout of their own
    try:
        with warnings.catch_warnings():
            # notop weights are convolutions, valid at any input size: Keras' note is noise
            warnings.filterwarnings("ignore", message="`input_shape` is undefined or non-square")
            return _construct(entry, input_shape, "imagenet", options)
    finally:
        socket.setdefaulttimeout(previous)


def build_backbone(cfg: dict[str, Any], input_shape: tuple) -> tuple[keras.Model, Any]:
    """Backbone plus the weights source still to load after assembly (a path) or None."""
    name, entry = cfg["name"], registry.get(cfg["name"])
    options = cfg.get("backbone_options") or {}
    if not entry.imagenet:
        if cfg["weights"] == "imagenet":
            log.warning("%s: has no ImageNet weights; continuing with random initialisation.", name)
            return _construct(entry, input_shape, None, options), None
        return _construct(entry, input_shape, None, options), cfg["weights"]
    if cfg["weights"] != "imagenet":
        return _construct(entry, input_shape, None, options), cfg["weights"]
    try:
        return _imagenet_backbone(
            entry, input_shape, cfg["download_timeout_s"], options
        ), "imagenet"
    except Exception as error:  # keras reports a failed download as a bare Exception
        fallback = cfg["weights_fallback"]
        cache = os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "models")
        why = f"not in the {cache} cache; download failed: {one_line(error)}"
        if fallback == "error":
            raise ConfigError(
                f"{name}: ImageNet weights unavailable ({why}); "
                "weights_fallback='error', so stopping."
            ) from error
        next_step = (
            "random initialisation"
            if fallback == "random"
            else f"the local weights file {str(fallback)!r}"
        )
        log.warning(
            "%s: ImageNet weights unavailable (%s); continuing with %s.", name, why, next_step
        )
    keras.utils.set_random_seed(int(cfg["seed"]))  # same initial weights as weights=None
    backbone = _construct(entry, input_shape, None, options)
    return backbone, (None if fallback == "random" else fallback)


def _residual_branch_norms(backbone: keras.Model) -> list[layers.BatchNormalization]:
    """The BatchNorm that ends each residual branch: of an Add's BatchNorm inputs, the one
    computed last (the shortcut, or the previous block's output, comes first)."""
    order = {id(layer): i for i, layer in enumerate(backbone.layers)}

    def producer(tensor: Any) -> Any:
        """The layer that made a tensor, looking through dropout (EfficientNet's drop path)."""
        layer = tensor._keras_history.operation
        while isinstance(layer, layers.Dropout):
            layer = layer.input._keras_history.operation
        return layer

    found = []
    for layer in backbone.layers:
        if isinstance(layer, layers.Add):
            inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
            last = max((producer(t) for t in inputs), key=lambda p: order.get(id(p), -1))
            if isinstance(last, layers.BatchNormalization):
                found.append(last)
    return found


def preprocessing_gain(name: str) -> float:
    """How much a model's preprocessing scales pixels. Every registered one is affine per
    channel (caffe's mean subtraction, x / 127.5 - 1, x / 255, the identity), so a black and a
    white pixel measure it."""
    preprocess = registry.function(name, "preprocess")
    pair = np.array([[[[0.0] * 3]], [[[255.0] * 3]]], dtype="float32")
    out = keras.ops.convert_to_numpy(preprocess(keras.ops.convert_to_tensor(pair)))
    return float(np.mean(np.abs(out[1] - out[0]))) / 255.0


def _he_initialise(backbone: keras.Model, input_spread: float, seed: int) -> None:
    """Every convolution's kernel drawn He-normal (variance 2 / fan-in, which a ReLU halves back
    to the input's), the first one's divided by the spread of the pixels it is fed."""
    convs = [layer for layer in backbone.layers if isinstance(layer, layers.Conv2D)]
    for index, conv in enumerate(convs):
        kernel = keras.initializers.HeNormal(seed=seed + index)(conv.kernel.shape)
        scale = 1.0 / input_spread if index == 0 else 1.0
        conv.kernel.assign(keras.ops.cast(kernel * scale, conv.kernel.dtype))


def prepare_from_scratch(
    backbone: keras.Model, input_spread: float = 1.0, seed: int = 0
) -> dict[str, Any]:
    """What a randomly initialised backbone needs to learn in minutes, not days; returns what
    it did (`batchnorm_momentum` or None, `zero_gamma_branches`, `he_initialisation`), which
    the model card records and the methods section cites.

    BatchNorm momentum SCRATCH_BN_MOMENTUM, so inference mode keeps up with the weights. And
    every residual branch starts at zero (its last BatchNorm's gamma = 0, "zero-gamma", Goyal
    et al. 2017): each block starts as the identity, so a 50-layer ResNet's output does not
    grow with depth; from the usual gamma = 1, ResNet50 learns nothing in 1,000 steps.

    A backbone without BatchNorm (VGG16) starts from He initialisation (He et al. 2015), its
    first layer scaled by `input_spread`, the standard deviation of the preprocessed pixels:
    from Keras's Glorot default each of VGG16's 13 ReLU convolutions halves the signal's
    variance, so on demo faces at 32 px its features reach the heads at 0.037 from pixels at 59
    (standard deviations), and it predicts the majority class for its first two epochs; He
    initialised, its features start at 1 and it leaves the majority an epoch sooner
    (benchmarks/RESULTS.md).
    """
    norms = [layer for layer in backbone.layers if isinstance(layer, layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = SCRATCH_BN_MOMENTUM
    zeroed = 0
    for norm in _residual_branch_norms(backbone):
        if norm.gamma is not None:
            norm.gamma.assign(np.zeros(norm.gamma.shape, dtype=norm.gamma.dtype))
            zeroed += 1
    if not norms:
        _he_initialise(backbone, input_spread, seed)
    return {
        "batchnorm_momentum": SCRATCH_BN_MOMENTUM if norms else None,
        "zero_gamma_branches": zeroed,
        "he_initialisation": not norms,
    }
