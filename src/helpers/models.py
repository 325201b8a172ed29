"""Multi-task affect models built by name from one registry, so every backbone is trained alike.

Adding a backbone is one `register_backbone(Backbone(...))` entry (see `efficientnetb0`).
The models take raw pixels (0-255 floats) and carry their own preprocessing, so the predictor
feeds images as they are. Outputs are a dict keyed by head name.
"""
from __future__ import annotations

import logging
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import keras
import numpy as np
from keras import layers, ops

from helpers.errors import ConfigError, DataError
from helpers.labels import EXPRESSIONS
from helpers.losses import HEADS

log = logging.getLogger(__name__)

TRANSFER_MODES = ("frozen", "top_n", "full")
WEIGHTS_FALLBACKS = ("random", "error")
LANDMARK_ACTIVATIONS = ("sigmoid", "linear")
DOWNLOAD_TIMEOUT_S = 10.0
# BatchNorm momentum of a randomly initialised backbone. keras.applications use 0.99 (0.999 in
# MobileNetV2), tuned for fine-tuning pretrained statistics: from scratch, after a few hundred
# steps the moving averages still hold mostly their 0/1 start (0.999**400 = 0.67), so inference
# mode, validation and the saved model see a dead network. 0.9 follows the weights within ~20
# steps (PyTorch's default).
SCRATCH_BN_MOMENTUM = 0.9
BACKBONE_LAYER = "backbone"  # name of the nested feature extractor inside every model


def _rescale_unit(x: Any) -> Any:
    """Bring raw 0-255 pixels to [0, 1] for the custom CNN, which has no ImageNet convention."""
    return x / 255.0


@dataclass(frozen=True)
class Backbone:
    """One registry entry: how to build a feature extractor and feed it raw pixels."""

    name: str
    constructor: Callable[..., keras.Model] | None  # keras.applications builder; None = custom
    preprocess_input: Callable[[Any], Any]
    preprocessing: str  # what preprocess_input does, for model_metadata and reports
    min_size: int
    # Adam learning rate a randomly initialised network of this kind trains at. VGG16 has no
    # BatchNorm: from scratch at 1e-3 it collapses to the majority class within an epoch.
    scratch_learning_rate: float = 1e-3


_REGISTRY: dict[str, Backbone] = {}


def register_backbone(entry: Backbone) -> Backbone:
    """Make a backbone buildable by name; the single place a new architecture is declared."""
    _REGISTRY[entry.name] = entry
    return entry


_apps = keras.applications
register_backbone(Backbone("custom_cnn", None, _rescale_unit, "pixels / 255 -> [0, 1]", 16))
register_backbone(Backbone(
    "vgg16", _apps.VGG16, _apps.vgg16.preprocess_input,
    "keras.applications.vgg16.preprocess_input (caffe: RGB->BGR, ImageNet mean subtracted)", 32,
    scratch_learning_rate=1e-4))
register_backbone(Backbone(
    "resnet50", _apps.ResNet50, _apps.resnet50.preprocess_input,
    "keras.applications.resnet50.preprocess_input (caffe: RGB->BGR, ImageNet mean subtracted)",
    32))
register_backbone(Backbone(
    "mobilenetv2", _apps.MobileNetV2, _apps.mobilenet_v2.preprocess_input,
    "keras.applications.mobilenet_v2.preprocess_input (tf: pixels / 127.5 - 1)", 32))
register_backbone(Backbone(
    "efficientnetb0", _apps.EfficientNetB0, _apps.efficientnet.preprocess_input,
    "keras.applications.efficientnet.preprocess_input (identity: the backbone rescales itself)",
    32))


def available_models() -> list[str]:
    """Valid names for build_model, for parameter checks and error messages."""
    return list(_REGISTRY)


PRETRAINED_LEARNING_RATE = 1e-3  # heads on a frozen pretrained backbone (phase 1)


def default_learning_rate(name: str, pretrained: bool) -> float:
    """The learning rate a backbone trains at when none is given: its from-scratch rate, or
    the head warm-up rate over pretrained weights (known only once the weights are loaded)."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(available_models())}")
    return PRETRAINED_LEARNING_RATE if pretrained else _REGISTRY[name].scratch_learning_rate


@keras.saving.register_keras_serializable(package="helpers")
class Preprocess(layers.Layer):
    """Raw pixels in, what the backbone expects out: saved models need no outside preprocessing."""

    def __init__(self, backbone: str, to_rgb: bool = False, **kwargs: Any):
        kwargs.setdefault("dtype", "float32")  # mean subtraction in float32 under mixed precision
        super().__init__(**kwargs)
        if backbone not in _REGISTRY:
            raise ConfigError(f"unknown backbone {backbone!r}; valid names: {available_models()}")
        self.backbone = backbone
        self.to_rgb = bool(to_rgb)

    def call(self, x: Any) -> Any:
        """Replicate grayscale for ImageNet backbones, then their own preprocess_input."""
        x = ops.cast(x, self.compute_dtype)
        if self.to_rgb:
            x = ops.repeat(x, 3, axis=-1)
        return _REGISTRY[self.backbone].preprocess_input(x)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        """Only the channel count can change (gray -> RGB)."""
        return tuple(input_shape[:-1]) + ((3,) if self.to_rgb else (input_shape[-1],))

    def get_config(self) -> dict:
        """Keep backbone and replication so a loaded .keras model preprocesses identically."""
        return {**super().get_config(), "backbone": self.backbone, "to_rgb": self.to_rgb}


# --------------------------------------------------------------------------- argument checks

def _check_path(value: Any, what: str) -> Path:
    """A weights path must exist before any work starts."""
    path = Path(os.fspath(value)).expanduser()
    if not path.is_file():
        raise ConfigError(f"{what}: weights file {str(path)!r} does not exist")
    return path


def _validate(name: str, **kw: Any) -> dict[str, Any]:
    """Check every argument up front and return them normalised; ConfigError says what is valid."""
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(available_models())}")
    entry = _REGISTRY[name]
    size, channels = kw["image_size"], kw["channels"]
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < entry.min_size:
        raise ConfigError(f"{name}: image_size must be an integer >= {entry.min_size}, "
                          f"got {size!r}")
    if channels not in (1, 3):
        raise ConfigError(f"{name}: channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    heads = kw["heads"]
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    unknown = [h for h in heads if h not in HEADS]
    if unknown or not heads or len(set(heads)) != len(heads):
        raise ConfigError(f"{name}: heads must be a non-empty subset of {HEADS} "
                          f"without repeats, got {heads!r}")
    weights = kw["weights"]
    if weights not in (None, "imagenet"):
        weights = _check_path(weights, f"{name} weights")
    fallback = kw["weights_fallback"]
    if fallback not in WEIGHTS_FALLBACKS:
        fallback = _check_path(fallback, f"{name} weights_fallback (or one of {WEIGHTS_FALLBACKS})")
    if kw["transfer"] not in (None, *TRANSFER_MODES):
        raise ConfigError(f"{name}: transfer must be one of {TRANSFER_MODES} or None, "
                          f"got {kw['transfer']!r}")
    top_n = kw["trainable_top_n"]
    if not isinstance(top_n, (int, np.integer)) or isinstance(top_n, bool) or top_n < 0:
        raise ConfigError(f"{name}: trainable_top_n must be an integer >= 0, got {top_n!r}")
    units = kw["shared_units"]
    if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
        raise ConfigError(f"{name}: shared_units must be an integer >= 1, got {units!r}")
    if not isinstance(kw["dropout"], (int, float)) or not 0.0 <= kw["dropout"] < 1.0:
        raise ConfigError(f"{name}: dropout must be in [0, 1), got {kw['dropout']!r}")
    n_classes = kw["n_classes"]
    if not isinstance(n_classes, (int, np.integer)) or not 2 <= n_classes <= len(EXPRESSIONS):
        raise ConfigError(f"{name}: n_classes must be an integer in 2..{len(EXPRESSIONS)} "
                          f"(the shared label space), got {n_classes!r}")
    if kw["landmark_activation"] not in LANDMARK_ACTIVATIONS:
        raise ConfigError(f"{name}: landmark_activation must be one of {LANDMARK_ACTIVATIONS}, "
                          f"got {kw['landmark_activation']!r}")
    if not isinstance(kw["seed"], (int, np.integer)) or isinstance(kw["seed"], bool):
        raise ConfigError(f"{name}: seed must be an integer, got {kw['seed']!r}")
    return {**kw, "name": name, "heads": tuple(h for h in HEADS if h in heads),
            "weights": weights, "weights_fallback": fallback}


# --------------------------------------------------------------------------- backbones

def _custom_cnn(input_shape: tuple[int, int, int]) -> keras.Model:
    """Small VGG-style extractor for 48 px faces: fast on a CPU, trained from scratch."""
    inputs = keras.Input(input_shape)
    x = inputs
    for block, filters in enumerate((32, 64, 128, 256), start=1):
        for conv in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                              name=f"block{block}_conv{conv}")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        x = layers.Dropout(0.1 * block, name=f"block{block}_dropout")(x)
    return keras.Model(inputs, x, name=BACKBONE_LAYER)


def _imagenet_backbone(entry: Backbone, input_shape: tuple, timeout_s: float) -> keras.Model:
    """Ask keras for ImageNet weights (its cache in ~/.keras/models first) without hanging."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)  # keras.applications downloads have no timeout of their own
    try:
        return entry.constructor(include_top=False, weights="imagenet", input_shape=input_shape,
                                 name=BACKBONE_LAYER)
    finally:
        socket.setdefaulttimeout(previous)


def _one_line(error: BaseException) -> str:
    """Exceptions from urllib/keras span lines; the log message must stay one line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _build_backbone(cfg: dict[str, Any], input_shape: tuple) -> tuple[keras.Model, Any]:
    """Backbone plus the weights source still to load after assembly (a path) or None."""
    name, entry = cfg["name"], _REGISTRY[cfg["name"]]
    if entry.constructor is None:
        if cfg["weights"] == "imagenet":
            log.warning("%s: has no ImageNet weights; continuing with random initialisation.", name)
            return _custom_cnn(input_shape), None
        return _custom_cnn(input_shape), cfg["weights"]
    if cfg["weights"] != "imagenet":
        return entry.constructor(include_top=False, weights=None, input_shape=input_shape,
                                 name=BACKBONE_LAYER), cfg["weights"]
    try:
        return _imagenet_backbone(entry, input_shape, cfg["download_timeout_s"]), "imagenet"
    except Exception as error:  # keras reports a failed download as a bare Exception
        fallback = cfg["weights_fallback"]
        cache = os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "models")
        why = f"not in the {cache} cache; download failed: {_one_line(error)}"
        if fallback == "error":
            raise ConfigError(f"{name}: ImageNet weights unavailable ({why}); "
                              "weights_fallback='error', so stopping.") from error
        next_step = ("random initialisation" if fallback == "random"
                     else f"the local weights file {str(fallback)!r}")
        log.warning("%s: ImageNet weights unavailable (%s); continuing with %s.",
                    name, why, next_step)
    keras.utils.set_random_seed(int(cfg["seed"]))  # same initial weights as weights=None
    backbone = entry.constructor(include_top=False, weights=None, input_shape=input_shape,
                                 name=BACKBONE_LAYER)
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


def _prepare_from_scratch(backbone: keras.Model) -> None:
    """What a randomly initialised backbone needs to learn in minutes, not days.

    BatchNorm momentum SCRATCH_BN_MOMENTUM, so inference mode keeps up with the weights. And
    every residual branch starts at zero (its last BatchNorm's gamma = 0, "zero-gamma", Goyal
    et al. 2017): each block starts as the identity, so a 50-layer ResNet's output does not
    grow with depth; from the usual gamma = 1, ResNet50 learns nothing in 1,000 steps.
    """
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = SCRATCH_BN_MOMENTUM
    for norm in _residual_branch_norms(backbone):
        if norm.gamma is not None:
            norm.gamma.assign(np.zeros(norm.gamma.shape, dtype=norm.gamma.dtype))


# --------------------------------------------------------------------------- local weights

def _walk(layer: keras.layers.Layer, prefix: str = "") -> dict[str, keras.layers.Layer]:
    """Every layer by its path ('backbone/block1_conv1'), so nested backbones match by name."""
    found = {}
    for child in getattr(layer, "layers", []):
        path = f"{prefix}{child.name}"
        found[path] = child
        found.update(_walk(child, path + "/"))
    return found


def _copy_by_name(source: keras.Model, target: keras.Model) -> int:
    """Copy weights of same-named, same-shaped layers; a .keras file may have other heads."""
    donors, copied = _walk(source), 0
    for path, layer in _walk(target).items():
        donor = donors.get(path)
        if donor is None or getattr(layer, "layers", None) or not layer.weights:
            continue
        values = donor.get_weights()
        if [v.shape for v in values] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(values)
            copied += 1
    return copied


def _fingerprint(model: keras.Model) -> float:
    """Cheap checksum to tell whether a lenient load changed anything."""
    return float(sum(np.abs(np.asarray(w)).sum() for w in model.weights))


def _load_weights_h5(model: keras.Model, backbone: keras.Model, path: Path) -> None:
    """A .weights.h5 from the same model (same arguments) or from its bare backbone.

    Keras matches these files by layer position, not name, so other heads need a .keras file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # keras warns per skipped layer before it raises
        try:
            model.load_weights(path)
        except ValueError as whole_model_error:
            try:
                backbone.load_weights(path)
            except ValueError:
                raise DataError(path, f"does not fit {model.name} built with these arguments "
                                      "(to change heads, load its .keras file instead): "
                                      f"{_one_line(whole_model_error)}") from whole_model_error


def _load_weights_file(model: keras.Model, path: Path) -> None:
    """Load a local weights file: a .keras model, a .weights.h5 or a legacy (notop) .h5."""
    backbone = model.get_layer(BACKBONE_LAYER)
    suffix = path.name.lower()
    try:
        if suffix.endswith(".keras"):
            source = keras.saving.load_model(path, compile=False)
            if _copy_by_name(source, model) == 0:
                raise DataError(path, f"no layer matches model {model.name!r} by name and shape")
        elif suffix.endswith(".weights.h5"):
            _load_weights_h5(model, backbone, path)
        elif suffix.endswith((".h5", ".hdf5")):
            before = _fingerprint(backbone)
            backbone.load_weights(path, by_name=True, skip_mismatch=True)
            if _fingerprint(backbone) == before:
                raise DataError(path, f"no layer of the {model.name} backbone found in the file")
        else:
            raise DataError(path, "unknown weights format: use .keras, .weights.h5 or .h5")
    except DataError:
        raise
    except Exception as error:
        raise DataError(path, f"cannot load weights into {model.name} "
                              f"(same name, image size, channels and heads?): {_one_line(error)}"
                        ) from error


# --------------------------------------------------------------------------- transfer modes

def _has_learned_statistics(backbone: keras.Model) -> bool:
    """BatchNorm statistics away from their 0/1 start come from training and are worth keeping."""
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            if np.any(np.asarray(layer.moving_mean) != 0) or np.any(
                    np.asarray(layer.moving_variance) != 1):
                return True
    return False


def set_transfer_mode(model: keras.Model, mode: str, top_n: int = 20) -> keras.Model:
    """Choose what fine-tuning may change (two-phase schedule); recompile the model afterwards.

    BatchNorm layers whose statistics were learned (ImageNet or a loaded file) stay frozen in
    every mode: in Keras 3 only a frozen BatchNorm is sure to run in inference mode, since fit()'s
    training=True overrides the `training=False` recorded on the backbone call
    (keras-team/keras#20285). Statistics still at their initial 0/1 (random init) are learned.
    """
    if mode not in TRANSFER_MODES:
        raise ConfigError(f"transfer mode must be one of {TRANSFER_MODES}, got {mode!r}")
    if not isinstance(top_n, (int, np.integer)) or isinstance(top_n, bool) or top_n < 0:
        raise ConfigError(f"top_n must be an integer >= 0, got {top_n!r}")
    try:
        backbone = model.get_layer(BACKBONE_LAYER)
    except ValueError as error:
        raise ConfigError(f"model {model.name!r} has no {BACKBONE_LAYER!r} layer: "
                          "was it built by helpers.models.build_model?") from error
    backbone.trainable = mode != "frozen"
    if mode == "frozen":
        return model
    freeze_bn = _has_learned_statistics(backbone)
    inner = backbone.layers
    for index, layer in enumerate(inner):
        on_top = mode == "full" or index >= len(inner) - top_n
        is_bn = isinstance(layer, layers.BatchNormalization)
        layer.trainable = on_top and not (is_bn and freeze_bn)
    return model


def transfer_mode(model: keras.Model) -> str:
    """Read the transfer mode back from trainability, for metadata and checks."""
    backbone = model.get_layer(BACKBONE_LAYER)
    weighted = [layer for layer in backbone.layers
                if layer.weights and not isinstance(layer, layers.BatchNormalization)]
    trainable = [layer.trainable for layer in weighted] if backbone.trainable else [False]
    if not any(trainable):
        return "frozen"
    return "full" if all(trainable) else "top_n"


# --------------------------------------------------------------------------- the factory

def _head(name: str, n_classes: int, landmark_activation: str) -> layers.Layer:
    """Output layers in float32 so losses stay stable under mixed precision."""
    units, activation = {
        "expression": (n_classes, "softmax"),
        "valence": (1, "tanh"),
        "arousal": (1, "tanh"),
        "landmarks": (136, landmark_activation),  # x0/W, y0/H, x1/W, ... in [0, 1]
    }[name]
    return layers.Dense(units, activation=activation, dtype="float32", name=name)


def build_model(
    name: str,
    *,
    image_size: int = 96,
    channels: int = 3,
    heads: tuple[str, ...] | list[str] = HEADS,
    weights: str | os.PathLike | None = None,
    weights_fallback: str | os.PathLike = "random",
    transfer: str | None = None,
    trainable_top_n: int = 20,
    shared_units: int = 256,
    dropout: float = 0.3,
    n_classes: int = len(EXPRESSIONS),
    landmark_activation: str = "sigmoid",
    seed: int = 0,
    download_timeout_s: float = DOWNLOAD_TIMEOUT_S,
) -> keras.Model:
    """Build any registered model with the same arguments, so notebooks loop over names.

    weights: None (random), "imagenet" (cached or downloaded; on failure `weights_fallback`:
    "random", "error" -> ConfigError, or a local weights file), or a local weights file
    (.keras: layers copied by name; .weights.h5 from a model or backbone; legacy .h5 by name).
    transfer: "frozen", "top_n" (the last `trainable_top_n` backbone layers), "full", or
    None = "frozen" when pretrained weights were loaded, else "full". Pretrained BatchNorm
    statistics stay frozen in every mode (see set_transfer_mode).
    """
    cfg = _validate(name, image_size=image_size, channels=channels, heads=heads, weights=weights,
                    weights_fallback=weights_fallback, transfer=transfer,
                    trainable_top_n=trainable_top_n, shared_units=shared_units, dropout=dropout,
                    n_classes=n_classes, landmark_activation=landmark_activation, seed=seed)
    cfg["download_timeout_s"] = download_timeout_s
    keras.utils.set_random_seed(int(seed))
    entry = _REGISTRY[name]
    rgb_backbone = entry.constructor is not None
    backbone_shape = (image_size, image_size, 3 if rgb_backbone else channels)
    backbone, source = _build_backbone(cfg, backbone_shape)

    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = Preprocess(name, to_rgb=rgb_backbone and channels == 1, name="preprocess")(inputs)
    # Pretrained backbones run in inference mode so BatchNorm statistics hold while fine-tuning
    # (keras-io transfer-learning guide; set_transfer_mode also freezes those BatchNorm layers,
    # see there). A randomly initialised backbone must learn its statistics.
    x = backbone(x, training=False) if source is not None else backbone(x)
    if source is None:
        _prepare_from_scratch(backbone)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dense(shared_units, activation="relu", name="shared")(x)
    x = layers.Dropout(dropout, name="shared_dropout")(x)
    outputs = {h: _head(h, n_classes, landmark_activation)(x) for h in cfg["heads"]}
    model = keras.Model(inputs, outputs, name=name)

    if isinstance(source, Path):
        _load_weights_file(model, source)
    mode = transfer or ("frozen" if source is not None else "full")
    return set_transfer_mode(model, mode, trainable_top_n)


# --------------------------------------------------------------------------- metadata

def _describe(name: str, channels: int) -> str:
    """How raw pixels reach the backbone, in words for the predictor and the report."""
    entry = _REGISTRY[name]
    to_rgb = entry.constructor is not None and channels == 1
    gray = "grayscale replicated to 3 channels, then " if to_rgb else ""
    return f"inside the model: {gray}{entry.preprocessing}"


def model_metadata(model_or_kwargs: keras.Model | Mapping[str, Any]) -> dict[str, Any]:
    """Facts the predictor needs (input, preprocessing, heads, labels), from a model or kwargs."""
    if isinstance(model_or_kwargs, keras.Model):
        model = model_or_kwargs
        try:
            name = model.get_layer("preprocess").backbone
        except ValueError as error:
            raise ConfigError(f"model {model.name!r} has no 'preprocess' layer: "
                              "was it built by helpers.models.build_model?") from error
        _, size, _, channels = model.input_shape
        heads = tuple(h for h in HEADS if h in {layer.name for layer in model.layers})
        n_classes = model.get_layer("expression").units if "expression" in heads else None
        landmark_activation = (model.get_layer("landmarks").get_config()["activation"]
                               if "landmarks" in heads else None)
        extra = {"transfer": transfer_mode(model)}
    else:
        kwargs = dict(model_or_kwargs)
        if "name" not in kwargs:
            raise ConfigError(f"model kwargs need a 'name'; valid names: {available_models()}")
        defaults = {"image_size": 96, "channels": 3, "heads": HEADS, "weights": None,
                    "weights_fallback": "random", "transfer": None, "trainable_top_n": 20,
                    "shared_units": 256, "dropout": 0.3, "n_classes": len(EXPRESSIONS),
                    "landmark_activation": "sigmoid", "seed": 0}
        unknown = set(kwargs) - set(defaults) - {"name", "download_timeout_s"}
        if unknown:
            raise ConfigError(f"unknown model arguments {sorted(unknown)}")
        kwargs.pop("download_timeout_s", None)
        cfg = _validate(**{**defaults, **kwargs})
        name, size, channels, heads = cfg["name"], cfg["image_size"], cfg["channels"], cfg["heads"]
        n_classes = cfg["n_classes"] if "expression" in heads else None
        landmark_activation = cfg["landmark_activation"] if "landmarks" in heads else None
        weights = cfg["weights"]
        extra = {"weights": str(weights) if isinstance(weights, Path) else weights,
                 "transfer": cfg["transfer"]}
    return {
        "name": name,
        "image_size": int(size),
        "channels": int(channels),
        "input": "float pixels in 0..255, shape (image_size, image_size, channels)",
        "preprocessing": _describe(name, int(channels)),
        "heads": list(heads),
        "labels": list(EXPRESSIONS[:n_classes]) if n_classes else None,
        "n_classes": n_classes,
        "valence_range": [-1.0, 1.0] if "valence" in heads else None,
        "arousal_range": [-1.0, 1.0] if "arousal" in heads else None,
        "landmarks": ("136 values x0/W, y0/H, x1/W, ...: 68 points normalised to the image "
                      f"({landmark_activation} output)") if "landmarks" in heads else None,
        **extra,
    }
