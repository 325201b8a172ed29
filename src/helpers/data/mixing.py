"""Mixup and CutMix: training faces blended in pairs, with the expression target blended alike.

Batch-level augmentation after the per-image one: each face of a training batch is paired with
the face at the mirrored position of the batch (timm's pairing) and, with probability `p`,
blended with it: mixup (Zhang et al. 2018) averages the two images with a weight lambda drawn
from Beta(alpha, alpha); CutMix (Yun et al. 2019) pastes a box of the partner covering 1 - lambda
of the face. The expression target becomes lambda x one-hot(own) + (1 - lambda) x
one-hot(partner); valence and arousal are blended with the same weight; a blended face has no
landmarks of its own, so its landmark target is marked missing. A pair where either face has no
expression label stays unblended. Every draw depends on (seed, epoch, the batch's first row), so
a batch is the same however the pipeline is iterated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from helpers.core.errors import ConfigError

MIX_MODES = ("mixup", "cutmix")
_STREAM = 0x6D6978  # keeps these draws apart from the per-image augmentation's


@dataclass(frozen=True)
class MixSettings:
    """How training batches are blended: the mode, Beta(alpha, alpha) and the share blended."""

    mode: str
    alpha: float
    p: float = 1.0

    def __post_init__(self) -> None:
        """Bad values are refused by name, as the training settings are."""
        if self.mode not in MIX_MODES:
            raise ConfigError(f"mixing mode must be one of {list(MIX_MODES)}, got {self.mode!r}")
        for name, value, positive in (("alpha", self.alpha, True), ("p", self.p, False)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"mixing {name} must be a number, got {value!r}")
            ok = value > 0 if positive else 0 <= value <= 1
            if not (math.isfinite(value) and ok):
                raise ConfigError(
                    f"mixing {name} must be {'> 0' if positive else 'in [0, 1]'}, got {value!r}"
                )

    @classmethod
    def from_value(cls, value: MixSettings | Mapping[str, Any] | None) -> MixSettings | None:
        """A training setting's dict (e.g. {"mode": "mixup", "alpha": 0.2}) or None: no mixing."""
        if value is None or isinstance(value, MixSettings):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"mixing must be a dict such as {{'mode': 'mixup', 'alpha': 0.2}}, got {value!r}"
            )
        unknown = sorted(set(value) - {"mode", "alpha", "p"})
        if unknown or "mode" not in value or "alpha" not in value:
            raise ConfigError(
                f"mixing takes 'mode', 'alpha' and optionally 'p', got {sorted(value)}"
            )
        return cls(**dict(value))

    def to_dict(self) -> dict[str, Any]:
        """For the model card and the resume check."""
        return asdict(self)


@dataclass
class MixedBatch:
    """A blended batch: images, soft expression targets and each face's own share lambda."""

    images: np.ndarray  # float32 [B, S, S, C]
    soft: np.ndarray  # float32 [B, n_classes]; a row of zeros where the face has no label
    lam: np.ndarray  # float32 [B]; 1 where the face was left as it was
    partner: np.ndarray  # int64 [B]
    mixed: np.ndarray  # bool [B]

    def blend(self, values: np.ndarray) -> np.ndarray:
        """A per-face target or weight blended as the images were (NaN where either is NaN)."""
        values = np.asarray(values, np.float32)
        lam = self.lam.reshape((-1,) + (1,) * (values.ndim - 1))
        return lam * values + (1 - lam) * values[self.partner]


def batch_rng(seed: int, epoch: int, first_row: int) -> np.random.Generator:
    """The draws of one training batch: its first row is unique within an epoch's permutation."""
    return np.random.default_rng([int(seed), int(epoch), int(first_row), _STREAM])


def _box(side: int, share: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """CutMix's box: a square of about `share` of the face, centred anywhere, clipped."""
    cut = int(round(side * math.sqrt(share)))
    cy, cx = rng.integers(0, side, size=2)
    y0, y1 = np.clip([cy - cut // 2, cy + cut - cut // 2], 0, side)
    x0, x1 = np.clip([cx - cut // 2, cx + cut - cut // 2], 0, side)
    return int(y0), int(y1), int(x0), int(x1)


def mix_batch(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    settings: MixSettings,
    rng: np.random.Generator,
) -> MixedBatch:
    """Blend a batch in mirrored pairs (module docstring); labels are int, -1 for none."""
    images = np.asarray(images, np.float32)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    n = len(labels)
    partner = np.arange(n)[::-1].copy()
    lam = rng.beta(settings.alpha, settings.alpha, size=n).astype(np.float32)
    chosen = rng.random(n) < settings.p
    labelled = labels >= 0
    mixed = chosen & labelled & labelled[partner] & (partner != np.arange(n))
    lam = np.where(mixed, lam, np.float32(1.0)).astype(np.float32)
    out = images.copy()
    side = images.shape[1]
    for i in np.flatnonzero(mixed):
        if settings.mode == "mixup":
            out[i] = lam[i] * images[i] + (1 - lam[i]) * images[partner[i]]
            continue
        y0, y1, x0, x1 = _box(side, 1.0 - float(lam[i]), rng)
        out[i, y0:y1, x0:x1] = images[partner[i], y0:y1, x0:x1]
        lam[i] = 1.0 - (y1 - y0) * (x1 - x0) / float(side * side)
    eye = np.eye(n_classes, dtype=np.float32)
    own = np.where(labelled[:, None], eye[np.clip(labels, 0, n_classes - 1)], 0.0)
    soft = lam[:, None] * own + (1 - lam[:, None]) * own[partner]
    return MixedBatch(out, soft.astype(np.float32), lam, partner, mixed)
