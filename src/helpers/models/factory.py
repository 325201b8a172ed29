"""Multi-task affect models built by name from one registry, so every backbone is trained alike.

Adding an architecture is one entry in helpers.models.registry (see `efficientnetb0`).
The models take raw pixels (0-255 floats) and carry their own preprocessing, so the predictor
feeds images as they are. Outputs are a dict keyed by head name.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from helpers.core.errors import ConfigError
from helpers.core.labels import EXPRESSIONS, HEADS, check_heads
from helpers.models import registry
from helpers.models.backbones import (
    IMAGENET_PIXEL_STD,
    FusedBatchNormalization,
    Preprocess,
    build_backbone,
    builder_options,
    prepare_from_scratch,
    preprocessing_gain,
    with_norm,
)
from helpers.models.heads import head_layer
from helpers.models.transfer import TRANSFER_MODES, set_transfer_mode, transfer_mode
from helpers.models.weights import load_weights_file

log = logging.getLogger(__name__)

WEIGHTS_FALLBACKS = ("random", "error")
LANDMARK_ACTIVATIONS = ("sigmoid", "linear")
# How the backbone's feature map becomes one vector: "avg" keeps what is there, "flatten" also
# where (a face is aligned: a mouth feature at the bottom means something else at the top).
POOLINGS = ("avg", "flatten")
DOWNLOAD_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- argument checks


def check_weights_path(value: Any, what: str) -> Path:
    """A weights path must be text (or a path) naming a file that exists, before any work
    starts; anything else is a ConfigError that says `what` it was given for."""
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{what}: expected a weights file's path, got {value!r}")
    path = Path(os.fspath(value)).expanduser()
    if not path.is_file():
        raise ConfigError(f"{what}: weights file {str(path)!r} does not exist")
    return path


def check_fallback(fallback: Any, name: str) -> Any:
    """What replaces ImageNet weights that cannot be had: random, error or a weights file."""
    if fallback in WEIGHTS_FALLBACKS:
        return fallback
    return check_weights_path(fallback, f"{name} weights_fallback (or one of {WEIGHTS_FALLBACKS})")


def _validate(name: str, **kw: Any) -> dict[str, Any]:
    """Check every argument up front and return them normalised; ConfigError says what is valid."""
    entry = registry.get(name)
    size, channels = kw["image_size"], kw["channels"]
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < entry.min_size:
        raise ConfigError(
            f"{name}: image_size must be an integer >= {entry.min_size}, got {size!r}"
        )
    if channels not in (1, 3):
        raise ConfigError(f"{name}: channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    heads = check_heads(kw["heads"], f"{name}: heads")
    weights = kw["weights"]
    if weights not in (None, "imagenet"):
        weights = check_weights_path(weights, f"{name} weights")
    fallback = check_fallback(kw["weights_fallback"], name)
    if kw["transfer"] not in (None, *TRANSFER_MODES):
        raise ConfigError(
            f"{name}: transfer must be one of {TRANSFER_MODES} or None, got {kw['transfer']!r}"
        )
    top_n = kw["trainable_top_n"]
    if not isinstance(top_n, (int, np.integer)) or isinstance(top_n, bool) or top_n < 0:
        raise ConfigError(f"{name}: trainable_top_n must be an integer >= 0, got {top_n!r}")
    units = kw["shared_units"]
    if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units < 1:
        raise ConfigError(f"{name}: shared_units must be an integer >= 1, got {units!r}")
    if not isinstance(kw["dropout"], (int, float)) or not 0.0 <= kw["dropout"] < 1.0:
        raise ConfigError(f"{name}: dropout must be in [0, 1), got {kw['dropout']!r}")
    if kw["pooling"] not in POOLINGS:
        raise ConfigError(f"{name}: pooling must be one of {POOLINGS}, got {kw['pooling']!r}")
    n_classes = kw["n_classes"]
    if not isinstance(n_classes, (int, np.integer)) or not 2 <= n_classes <= len(EXPRESSIONS):
        raise ConfigError(
            f"{name}: n_classes must be an integer in 2..{len(EXPRESSIONS)} "
            f"(the shared label space), got {n_classes!r}"
        )
    if kw["landmark_activation"] not in LANDMARK_ACTIVATIONS:
        raise ConfigError(
            f"{name}: landmark_activation must be one of {LANDMARK_ACTIVATIONS}, "
            f"got {kw['landmark_activation']!r}"
        )
    if not isinstance(kw["seed"], (int, np.integer)) or isinstance(kw["seed"], bool):
        raise ConfigError(f"{name}: seed must be an integer, got {kw['seed']!r}")
    options = builder_options(name, kw["backbone_options"])
    if options.get("train_crop") is not None and "landmarks" in heads:
        log.warning(
            "%s: train_crop left out: a random window of each face would not match the "
            "landmark targets, which are in the whole image's pixels.",
            name,
        )
        options = {k: v for k, v in options.items() if k != "train_crop"}
    return {
        **kw,
        "name": name,
        "heads": heads,
        "weights": weights,
        "weights_fallback": fallback,
        "backbone_options": options,
    }


# --------------------------------------------------------------------------- the factory


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
    pooling: str = "avg",
    backbone_options: Mapping[str, Any] | None = None,
    n_classes: int = len(EXPRESSIONS),
    landmark_activation: str = "sigmoid",
    seed: int = 0,
    download_timeout_s: float = DOWNLOAD_TIMEOUT_S,
    loaded: list[str] | None = None,
    from_scratch: dict[str, Any] | None = None,
) -> keras.Model:
    """Build any registered model with the same arguments, so notebooks loop over names.

    weights: None (random), "imagenet" (cached or downloaded; on failure `weights_fallback`:
    "random", "error" -> ConfigError, or a local weights file), or a local weights file
    (.keras: layers copied by name; .weights.h5 from a model or backbone; legacy .h5 by name).
    transfer: "frozen", "top_n" (the last `trainable_top_n` backbone layers), "full", or
    None = "frozen" when pretrained weights were loaded, else "full". Pretrained BatchNorm
    statistics stay frozen in every mode (see set_transfer_mode).
    pooling: "avg" (global average of the backbone's feature map) or "flatten" (every position
    kept: for small maps of aligned faces, such as the custom CNN's 3x3 at 48 px).
    backbone_options: the backbone builder's own arguments (e.g. the custom CNN's `convs` and
    `block_dropout`), over the registry entry's; unknown names are a ConfigError.
    loaded: a list the weights file's one-line summary is appended to (load_weights_file).
    from_scratch: a dict updated with what preparing a randomly initialised backbone did
    (prepare_from_scratch's facts, for the model card); left empty when weights were loaded.
    """
    cfg = _validate(
        name,
        image_size=image_size,
        channels=channels,
        heads=heads,
        weights=weights,
        weights_fallback=weights_fallback,
        transfer=transfer,
        trainable_top_n=trainable_top_n,
        shared_units=shared_units,
        dropout=dropout,
        pooling=pooling,
        backbone_options=backbone_options,
        n_classes=n_classes,
        landmark_activation=landmark_activation,
        seed=seed,
    )
    cfg["download_timeout_s"] = download_timeout_s
    keras.utils.set_random_seed(int(seed))
    rgb_backbone = registry.get(name).imagenet
    backbone_shape = (image_size, image_size, 3 if rgb_backbone else channels)
    backbone, source = build_backbone(cfg, backbone_shape)
    if keras.backend.backend() == "tensorflow":
        backbone = with_norm(backbone, FusedBatchNormalization)

    inputs = keras.Input((image_size, image_size, channels), name="image")
    x = Preprocess(name, to_rgb=rgb_backbone and channels == 1, name="preprocess")(inputs)
    # Pretrained backbones run in inference mode so BatchNorm statistics hold while fine-tuning
    # (keras-io transfer-learning guide; set_transfer_mode also freezes those BatchNorm layers,
    # see there). A randomly initialised backbone must learn its statistics.
    x = backbone(x, training=False) if source is not None else backbone(x)
    if source is None:
        spread = IMAGENET_PIXEL_STD * preprocessing_gain(name)  # the first layer's input
        prepared = prepare_from_scratch(backbone, input_spread=spread, seed=int(seed))
        if from_scratch is not None:
            from_scratch.update(prepared)
    pool = layers.Flatten if pooling == "flatten" else layers.GlobalAveragePooling2D
    x = pool(name="pool")(x)
    x = layers.Dense(shared_units, activation="relu", name="shared")(x)
    x = layers.Dropout(dropout, name="shared_dropout")(x)
    outputs = {h: head_layer(h, n_classes, landmark_activation)(x) for h in cfg["heads"]}
    model = keras.Model(inputs, outputs, name=name)

    if isinstance(source, Path):
        summary = load_weights_file(model, source)
        if loaded is not None:
            loaded.append(summary)
    mode = transfer or ("frozen" if source is not None else "full")
    return set_transfer_mode(model, mode, trainable_top_n)


# --------------------------------------------------------------------------- metadata


def _describe(name: str, channels: int) -> str:
    """How raw pixels reach the backbone, in words for the predictor and the report."""
    entry = registry.get(name)
    to_rgb = entry.imagenet and channels == 1
    gray = "grayscale replicated to 3 channels, then " if to_rgb else ""
    return f"inside the model: {gray}{entry.preprocessing}"


def model_metadata(model_or_kwargs: keras.Model | Mapping[str, Any]) -> dict[str, Any]:
    """Facts the predictor needs (input, preprocessing, heads, labels), from a model or kwargs."""
    if isinstance(model_or_kwargs, keras.Model):
        model = model_or_kwargs
        try:
            name = model.get_layer("preprocess").backbone
        except ValueError as error:
            raise ConfigError(
                f"model {model.name!r} has no 'preprocess' layer: "
                "was it built by helpers.models.factory.build_model?"
            ) from error
        _, size, _, channels = model.input_shape
        heads = tuple(h for h in HEADS if h in {layer.name for layer in model.layers})
        n_classes = model.get_layer("expression").units if "expression" in heads else None
        landmark_activation = (
            model.get_layer("landmarks").get_config()["activation"]
            if "landmarks" in heads
            else None
        )
        extra = {"transfer": transfer_mode(model)}
    else:
        kwargs = dict(model_or_kwargs)
        if "name" not in kwargs:
            raise ConfigError(f"model kwargs need a 'name'; valid names: {registry.list_models()}")
        defaults = {
            "image_size": 96,
            "channels": 3,
            "heads": HEADS,
            "weights": None,
            "weights_fallback": "random",
            "transfer": None,
            "trainable_top_n": 20,
            "shared_units": 256,
            "dropout": 0.3,
            "pooling": "avg",
            "backbone_options": None,
            "n_classes": len(EXPRESSIONS),
            "landmark_activation": "sigmoid",
            "seed": 0,
        }
        unknown = set(kwargs) - set(defaults) - {"name", "download_timeout_s"}
        if unknown:
            raise ConfigError(f"unknown model arguments {sorted(unknown)}")
        kwargs.pop("download_timeout_s", None)
        cfg = _validate(**{**defaults, **kwargs})
        name, size, channels, heads = cfg["name"], cfg["image_size"], cfg["channels"], cfg["heads"]
        n_classes = cfg["n_classes"] if "expression" in heads else None
        landmark_activation = cfg["landmark_activation"] if "landmarks" in heads else None
        weights = cfg["weights"]
        extra = {
            "weights": str(weights) if isinstance(weights, Path) else weights,
            "transfer": cfg["transfer"],
        }
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
        "landmarks": (
            "136 values x0/W, y0/H, x1/W, ...: 68 points normalised to the image "
            f"({landmark_activation} output)"
        )
        if "landmarks" in heads
        else None,
        **extra,
    }
