"""The model's outputs, one Dense layer per head, in float32 so losses stay stable under mixed
precision."""

from __future__ import annotations

from keras import layers


def head_layer(name: str, n_classes: int, landmark_activation: str) -> layers.Layer:
    """Output layers in float32 so losses stay stable under mixed precision."""
    units, activation = {
        "expression": (n_classes, "softmax"),
        "valence": (1, "tanh"),
        "arousal": (1, "tanh"),
        "landmarks": (136, landmark_activation),  # x0/W, y0/H, x1/W, ... in [0, 1]
    }[name]
    return layers.Dense(units, activation=activation, dtype="float32", name=name)
