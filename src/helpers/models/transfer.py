"""Transfer learning: which backbone layers train (frozen, the top n, all), with pretrained
BatchNorm statistics kept frozen."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from helpers.core.errors import ConfigError
from helpers.models.backbones import BACKBONE_LAYER

TRANSFER_MODES = ("frozen", "top_n", "full")


def _has_learned_statistics(backbone: keras.Model) -> bool:
    """BatchNorm statistics away from their 0/1 start come from training and are worth keeping."""
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization) and (
            np.any(np.asarray(layer.moving_mean) != 0)
            or np.any(np.asarray(layer.moving_variance) != 1)
        ):
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
        raise ConfigError(
            f"model {model.name!r} has no {BACKBONE_LAYER!r} layer: "
            "was it built by helpers.models.factory.build_model?"
        ) from error
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
    weighted = [
        layer
        for layer in backbone.layers
        if layer.weights and not isinstance(layer, layers.BatchNormalization)
    ]
    trainable = [layer.trainable for layer in weighted] if backbone.trainable else [False]
    if not any(trainable):
        return "frozen"
    return "full" if all(trainable) else "top_n"
