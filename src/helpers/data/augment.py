"""Landmark-aware augmentation and class balancing of the training split only."""
from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import albumentations as A
import cv2
import numpy as np
import pandas as pd
from sklearn.utils.class_weight import compute_class_weight
from helpers.core.progress import bar as progress_bar
from helpers.core.progress import line, terminal

from helpers.core.errors import ConfigError, DataError
from helpers.core.images import fit_square, read_image
from helpers.core.jsonio import read_json, write_json
from helpers.core.labels import EXPRESSIONS
from helpers.core.landmarks import FLIP_PERMUTATION, N_POINTS
from helpers.core.records import make_records, save_records
from helpers.core.words import counted
from helpers.data.splits import LeakageError, check_no_leakage

STRATEGIES: tuple[str, ...] = ("upsample", "downsample", "class_weights", "none")
_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE,
            "reflect": cv2.BORDER_REFLECT_101}
_MAX_SEED = 2**31 - 1
# A class upsampled from fewer faces than this is named: its copies repeat one or two faces.
FEW_TO_UPSAMPLE = 5


# ---------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation parameters; validated on creation so a typo fails before any image work.

    Defaults follow the coursework (flip, brightness/contrast, shift/scale/rotate, zoom);
    blur, noise and coarse dropout are available but off.
    """

    hflip_p: float = 0.5
    brightness_limit: float = 0.2          # +- fraction of the full range
    contrast_limit: float = 0.2            # +- fraction
    brightness_contrast_p: float = 0.5
    shift_limit: float = 0.1               # +- fraction of width / height
    scale_range: tuple[float, float] = (0.9, 1.1)
    rotate_limit: float = 15.0             # +- degrees
    affine_p: float = 0.7                  # shift, scale and rotate come as one affine
    zoom_range: tuple[float, float] = (1.0, 1.2)   # >1 zooms in; aspect ratio kept
    zoom_p: float = 0.3
    blur_p: float = 0.0
    blur_limit: int = 5                    # largest (odd) Gaussian kernel
    noise_p: float = 0.0
    noise_std: tuple[float, float] = (0.02, 0.08)  # fraction of the full range
    dropout_p: float = 0.0
    dropout_max_holes: int = 2
    dropout_size: tuple[float, float] = (0.08, 0.2)  # hole side, fraction of the image side
    border_mode: str = "replicate"         # constant | replicate | reflect

    def __post_init__(self) -> None:
        """Reject bad values naming the field, and normalise lists (from papermill) to tuples."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        for name in ("hflip_p", "brightness_contrast_p", "affine_p", "zoom_p", "blur_p",
                     "noise_p", "dropout_p"):
            self._number(name, 0.0, 1.0)
        self._number("brightness_limit", 0.0, 1.0)
        self._number("contrast_limit", 0.0, 1.0)
        self._number("shift_limit", 0.0, 0.5)
        self._number("rotate_limit", 0.0, 180.0)
        self._range("scale_range", 0.0, 10.0, open_low=True)
        self._range("zoom_range", 0.0, 10.0, open_low=True)
        self._range("noise_std", 0.0, 1.0)
        self._range("dropout_size", 0.0, 1.0, open_low=True)
        self._integer("blur_limit", 3)
        if self.blur_limit % 2 == 0:
            self._fail("blur_limit", "must be odd (a Gaussian kernel size)")
        self._integer("dropout_max_holes", 1)
        if self.border_mode not in _BORDERS:
            self._fail("border_mode", f"must be one of {sorted(_BORDERS)}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> AugmentConfig:
        """Build from notebook parameters; unknown keys are an error, not silently ignored."""
        d = dict(d or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"AugmentConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for ranges) for run manifests."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def _fail(self, name: str, problem: str) -> NoReturn:
        """Every validation error names the field, so notebook users know what to fix."""
        raise ConfigError(f"AugmentConfig.{name} {problem} (got {getattr(self, name)!r})")

    def _number(self, name: str, low: float, high: float) -> None:
        """Probabilities and limits: a real number (not a bool) within bounds."""
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            self._fail(name, f"must be a number in [{low}, {high}]")

    def _range(self, name: str, low: float, high: float, open_low: bool = False) -> None:
        """Sampling ranges: an ordered pair within bounds."""
        value = getattr(self, name)
        ok = (isinstance(value, tuple) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
        if ok:
            a, b = value
            ok = (a > low if open_low else a >= low) and a <= b <= high
        if not ok:
            bracket = "(" if open_low else "["
            self._fail(name, f"must be a pair (low, high) with {bracket}{low} ... {high}] and low <= high")

    def _integer(self, name: str, low: int) -> None:
        """Counts and kernel sizes: a true integer, at least low."""
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            self._fail(name, f"must be an integer >= {low}")


def flip_only_config() -> AugmentConfig:
    """A config that does nothing but always mirror; for checks and demonstrations."""
    return AugmentConfig(hflip_p=1.0, brightness_contrast_p=0.0, affine_p=0.0, zoom_p=0.0)


# ---------------------------------------------------------------------------------------------
# Applying a config
#
# Flip, shift/scale/rotate and zoom are composed into one matrix and applied with one
# cv2.warpAffine: one interpolation instead of one per geometric step, and no per-transform
# Python overhead (albumentations' Compose cost 0.17 ms per 96 px image, more than decoding
# it, which capped the training input pipeline). Brightness/contrast is one lookup table.
# Blur, noise and coarse dropout, off by default, stay albumentations transforms.

# Every sample draws all of these uniforms, whatever is enabled, so switching one transform
# off does not change the draws of the others.
_FLIP, _AFFINE, _SHIFT_X, _SHIFT_Y, _SCALE, _ROTATE, _ZOOM_ON, _ZOOM, _BC_ON, _ALPHA, _BETA, \
    _EXTRAS_SEED = range(12)
_DRAWS = 12


MODES: tuple[str, ...] = ("offline", "online", "both", "none")


@dataclass(frozen=True)
class AugmentSettings:
    """What notebook 03 decided and notebook 04 trains with, kept as <run>/augment.json."""

    mode: str = "none"  # offline (copies written), online (each batch), both, none
    config: AugmentConfig = field(default_factory=AugmentConfig)
    balance: str = "none"
    target_per_class: int | None = None
    class_weights: dict[int, float] | None = None
    seed: int = 0
    near_distance: int | None = None  # perceptual-hash bits apart still one face (splits)

    def __post_init__(self) -> None:
        """A mode notebook 04 knows, or a ConfigError (from_dict: a DataError naming the file)."""
        check_mode(self.mode, "mode")

    @property
    def online(self) -> bool:
        """Whether training augments each batch on the fly."""
        return self.mode in ("online", "both")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (class ids as strings, `online` spelled out for readers)."""
        weights = ({str(k): float(v) for k, v in self.class_weights.items()}
                   if self.class_weights else None)
        return {"mode": self.mode, "online": self.online, "config": self.config.to_dict(),
                "balance": self.balance, "target_per_class": self.target_per_class,
                "class_weights": weights, "seed": self.seed, "near_distance": self.near_distance}

    def write(self, path: str | os.PathLike) -> Path:
        """augment.json, written whole or not at all."""
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str | os.PathLike = "augment settings"
                  ) -> AugmentSettings:
        """Settings from their JSON form; a wrong field is a DataError naming it and the file.

        A file with only `online` (no `mode`) reads as mode online or none."""
        def fail(name: str, problem: str) -> NoReturn:
            raise DataError(where, f"{name} {problem} (got {d.get(name)!r})")

        if not isinstance(d, Mapping):
            raise DataError(where, f"expected a JSON object, got {type(d).__name__}")
        mode = d.get("mode", "online" if d.get("online") else "none")
        try:
            config = AugmentConfig.from_dict(d.get("config"))
        except (ConfigError, TypeError) as error:
            raise DataError(where, f"config: {error}") from error
        weights = d.get("class_weights")
        if weights is not None:
            try:
                weights = {int(k): float(v) for k, v in weights.items()}
            except (AttributeError, TypeError, ValueError):
                fail("class_weights", "must map class ids to numbers")
        seed = d.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            fail("seed", "must be an integer")
        target, near = d.get("target_per_class"), d.get("near_distance")
        if target is not None and (isinstance(target, bool) or not isinstance(target, int)):
            fail("target_per_class", "must be an integer or null")
        if near is not None and (isinstance(near, bool) or not isinstance(near, int)):
            fail("near_distance", "must be an integer or null")
        try:
            return cls(mode=mode, config=config, balance=str(d.get("balance", "none")),
                       target_per_class=target, class_weights=weights or None, seed=seed,
                       near_distance=near)
        except ConfigError as error:  # the mode, checked as the settings are made
            raise DataError(where, str(error)) from error

    @classmethod
    def read(cls, path: str | os.PathLike) -> AugmentSettings:
        """augment.json of a run, or a DataError naming the file."""
        return cls.from_dict(read_json(path), path)


@dataclass(frozen=True)
class AugmentParams:
    """What one augmented copy did; the matrix maps input pixel centres to output ones."""

    flip: bool
    warped: bool                  # shift/scale/rotate or zoom drawn: pixels resampled
    matrix: np.ndarray            # 2 x 3, float64
    alpha: float                  # contrast factor (1 = unchanged)
    beta: float                   # brightness offset in grey levels (0 = unchanged)
    extras_seed: int              # seed of the albumentations extras, when any are on


def _between(u: float, low: float, high: float) -> float:
    """Map a uniform draw in [0, 1) onto [low, high)."""
    return low + (high - low) * u


def sample_params(cfg: AugmentConfig, rng: np.random.Generator, height: int,
                  width: int) -> AugmentParams:
    """Draw one copy's parameters: flip, then shift/scale/rotate, then zoom, about the centre."""
    u = rng.random(_DRAWS)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    m = np.eye(3)
    flip, warped = bool(u[_FLIP] < cfg.hflip_p), False
    if flip:  # x' = W - 1 - x, the pixel-centre mirror of helpers.core.landmarks.flip_landmarks
        m = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    if u[_AFFINE] < cfg.affine_p:
        angle = _between(u[_ROTATE], -cfg.rotate_limit, cfg.rotate_limit)
        scale = _between(u[_SCALE], *cfg.scale_range)
        step = np.vstack([cv2.getRotationMatrix2D((cx, cy), angle, scale), [0.0, 0.0, 1.0]])
        step[0, 2] += _between(u[_SHIFT_X], -cfg.shift_limit, cfg.shift_limit) * width
        step[1, 2] += _between(u[_SHIFT_Y], -cfg.shift_limit, cfg.shift_limit) * height
        m, warped = step @ m, True
    if u[_ZOOM_ON] < cfg.zoom_p:
        zoom = _between(u[_ZOOM], *cfg.zoom_range)
        m = np.array([[zoom, 0.0, cx * (1 - zoom)], [0.0, zoom, cy * (1 - zoom)],
                      [0.0, 0.0, 1.0]]) @ m
        warped = True
    alpha, beta = 1.0, 0.0
    if u[_BC_ON] < cfg.brightness_contrast_p:  # albumentations' formula, brightness_by_max
        alpha = 1.0 + _between(u[_ALPHA], -cfg.contrast_limit, cfg.contrast_limit)
        beta = 255.0 * _between(u[_BETA], -cfg.brightness_limit, cfg.brightness_limit)
    return AugmentParams(flip=flip, warped=warped, matrix=m[:2], alpha=alpha, beta=beta,
                         extras_seed=int(u[_EXTRAS_SEED] * _MAX_SEED))


def _has_extras(cfg: AugmentConfig) -> bool:
    """Whether any of the albumentations image-only transforms is on."""
    return cfg.blur_p > 0 or cfg.noise_p > 0 or cfg.dropout_p > 0


def build_extras(cfg: AugmentConfig, seed: int | None = None) -> A.Compose:
    """The optional image-only transforms (blur, noise, dropout); landmarks do not move."""
    steps: list[A.BasicTransform] = []
    if cfg.blur_p > 0:
        steps.append(A.GaussianBlur(blur_limit=(3, cfg.blur_limit), p=cfg.blur_p))
    if cfg.noise_p > 0:
        steps.append(A.GaussNoise(std_range=cfg.noise_std, p=cfg.noise_p))
    if cfg.dropout_p > 0:
        steps.append(A.CoarseDropout(
            num_holes_range=(1, cfg.dropout_max_holes), hole_height_range=cfg.dropout_size,
            hole_width_range=cfg.dropout_size, fill=0, p=cfg.dropout_p))
    return A.Compose(steps, seed=seed)


_local = threading.local()


def _cached_extras(cfg: AugmentConfig) -> A.Compose:
    """One extras pipeline per config and thread: building is slow, reseeding not thread-safe."""
    cache = getattr(_local, "extras", None)
    if cache is None:
        cache = _local.extras = {}
    if cfg not in cache:
        cache[cfg] = build_extras(cfg)
    return cache[cfg]


def apply_params(image: np.ndarray, landmarks: np.ndarray | None, params: AugmentParams,
                 cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Warp, relight and (optionally) degrade one image; landmarks follow the same matrix."""
    shape = image.shape
    h, w = shape[:2]
    out = image
    if params.warped:
        out = cv2.warpAffine(image, params.matrix, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=_BORDERS[cfg.border_mode], borderValue=0)
    elif params.flip:
        out = cv2.flip(image, 1)  # a pure mirror is exact: no interpolation
    if params.alpha != 1.0 or params.beta != 0.0:
        lut = np.clip(np.rint(np.arange(256) * params.alpha + params.beta), 0, 255)
        out = cv2.LUT(out, lut.astype(np.uint8))
    if _has_extras(cfg):
        extras = _cached_extras(cfg)
        extras.set_random_seed(params.extras_seed)
        out = extras(image=np.ascontiguousarray(out))["image"]
    out = np.asarray(out, np.uint8).reshape(shape)
    if landmarks is None:
        return out, None
    pts = np.asarray(landmarks, dtype=np.float64).reshape(N_POINTS, 2)
    moved = pts @ params.matrix[:, :2].T + params.matrix[:, 2]
    if params.flip:  # the mirrored right eye is now the left one: renumber, not just move
        moved = moved[FLIP_PERMUTATION]
    return out, moved.astype(np.float32)


def augment(image: np.ndarray, landmarks: np.ndarray | None, cfg: AugmentConfig,
            seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """One augmented copy, identical for the same seed; valence/arousal are not touched."""
    rng = np.random.default_rng(int(seed))
    params = sample_params(cfg, rng, *np.asarray(image).shape[:2])
    return apply_params(np.asarray(image), landmarks, params, cfg)


def describe_pipeline(cfg: AugmentConfig) -> pd.DataFrame:
    """The steps a config enables, in order, with their settings: what notebook 03 shows."""
    border = cfg.border_mode
    rows = [
        ("horizontal flip", cfg.hflip_p, "mirror x' = W - 1 - x; landmarks renumbered left<->right",
         "one cv2.warpAffine (with the next two)"),
        ("shift / scale / rotate", cfg.affine_p,
         f"shift +-{cfg.shift_limit:g} of each side (x, y independent), scale "
         f"{cfg.scale_range[0]:g}-{cfg.scale_range[1]:g}, rotate +-{cfg.rotate_limit:g} deg, "
         f"border {border}", "one cv2.warpAffine"),
        ("zoom", cfg.zoom_p, f"scale {cfg.zoom_range[0]:g}-{cfg.zoom_range[1]:g} about the centre",
         "one cv2.warpAffine"),
        ("brightness / contrast", cfg.brightness_contrast_p,
         f"brightness +-{cfg.brightness_limit:g} x 255, contrast x(1 +-{cfg.contrast_limit:g})",
         "lookup table"),
        ("Gaussian blur", cfg.blur_p, f"kernel 3-{cfg.blur_limit}", "albumentations GaussianBlur"),
        ("Gaussian noise", cfg.noise_p, f"std {cfg.noise_std[0]:g}-{cfg.noise_std[1]:g} x 255",
         "albumentations GaussNoise"),
        ("coarse dropout", cfg.dropout_p,
         f"{'1 hole' if cfg.dropout_max_holes == 1 else f'1-{cfg.dropout_max_holes} holes'} of "
         f"{cfg.dropout_size[0]:g}-{cfg.dropout_size[1]:g} of the side; landmarks kept",
         "albumentations CoarseDropout"),
    ]
    table = pd.DataFrame(rows, columns=["step", "p", "settings", "applied by"])
    return table[table["p"] > 0].reset_index(drop=True)


def resize_with_landmarks(image: np.ndarray, landmarks: np.ndarray | None,
                          size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize to size x size, moving landmarks with the same pixel-centre mapping as cv2."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image, landmarks
    resized = fit_square(image, size)
    if landmarks is None:
        return resized, None
    pts = np.asarray(landmarks, dtype=np.float32).reshape(N_POINTS, 2)
    scale = np.array([size / w, size / h], dtype=np.float32)
    return resized, ((pts + 0.5) * scale - 0.5).astype(np.float32)


class OnlineAugmenter:
    """Per-sample augmentation for training input pipelines, deterministic per (seed, epoch, index).

    Landmarks come and go as (68, 2) float32; an all-NaN array means "no landmarks" and is
    returned as all-NaN. Safe to call from several threads (tf.data parallel map).
    """

    def __init__(self, cfg: AugmentConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = int(seed)

    def rng_for(self, index: int, epoch: int) -> np.random.Generator:
        """Independent stream per sample and epoch, so each epoch sees new variants."""
        return np.random.default_rng([self.seed, int(epoch), int(index)])

    def __call__(self, image: np.ndarray, landmarks: np.ndarray | None, index: int,
                 epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Augment one sample; NaN landmarks in, NaN landmarks out."""
        pts = None if landmarks is None else np.asarray(landmarks, dtype=np.float32)
        if pts is not None and np.isnan(pts).all():
            pts = None
        image = np.asarray(image)
        params = sample_params(self.cfg, self.rng_for(index, epoch), *image.shape[:2])
        out, moved = apply_params(image, pts, params, self.cfg)
        if moved is None:
            moved = np.full((N_POINTS, 2), np.nan, dtype=np.float32)
        return out, moved


def make_online_augmenter(cfg: AugmentConfig, seed: int = 0) -> OnlineAugmenter:
    """Callable (image, landmarks, index, epoch) -> (image, landmarks) for tf.numpy_function."""
    return OnlineAugmenter(cfg, seed)


def measure_throughput(cfg: AugmentConfig | None = None, image_size: int = 224, n: int = 300,
                       channels: int = 3, seed: int = 0) -> float:
    """Images per second of augment() on one core, to size augmentation work up front."""
    cfg = cfg or AugmentConfig()
    rng = np.random.default_rng(seed)
    shape = (image_size, image_size, channels) if channels > 1 else (image_size, image_size)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    pts = rng.uniform(0, image_size - 1, (N_POINTS, 2)).astype(np.float32)
    augment(image, pts, cfg, 0)  # warm-up: builds and caches the pipeline
    start = time.perf_counter()
    for i in range(n):
        augment(image, pts, cfg, i)
    return n / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------------
# Balancing


@dataclass
class BalancePlan:
    """What balancing will do to the train split: rows kept, copies to make, or class weights."""

    strategy: str
    target_per_class: int | None
    seed: int
    before: pd.Series                         # train rows per class before balancing
    keep: pd.DataFrame                        # original train rows that stay
    generate: pd.DataFrame                    # id, source, source_id, expression, transform_seed
    class_weights: dict[int, float] | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """Per class: train rows before, kept, generated and the resulting total."""
        kept = self.keep["expression"].astype(int).value_counts()
        made = self.generate["expression"].astype(int).value_counts()
        classes = sorted(set(self.before.index) | set(kept.index) | set(made.index))
        table = pd.DataFrame({
            "before": self.before.reindex(classes, fill_value=0),
            "kept": kept.reindex(classes, fill_value=0),
            "generated": made.reindex(classes, fill_value=0),
        })
        table["after"] = table["kept"] + table["generated"]
        if self.class_weights is not None:
            table["class_weight"] = pd.Series(self.class_weights).reindex(classes)
        table.index = [EXPRESSIONS[c] if 0 <= c < len(EXPRESSIONS) else str(c) for c in classes]
        table.index.name = "expression"
        return table


def check_balance(strategy: Any) -> None:
    """A balancing strategy notebook 03 knows (also checked by run_all.sh before any work)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"balance strategy must be one of {list(STRATEGIES)}, got {strategy!r}")


def check_image_format(image_format: Any) -> None:
    """How augmented copies are written: jpg or png (also checked by run_all.sh up front)."""
    if image_format not in ("png", "jpg"):
        raise ConfigError(f"image_format must be 'png' or 'jpg', got {image_format!r}")


def check_mode(mode: Any, name: str = "augment_mode") -> None:
    """Notebook 03's augment_mode: when copies are made (also checked by run_all.sh up front,
    and as AugmentSettings are made)."""
    if mode not in MODES:
        raise ConfigError(f"{name} must be one of {', '.join(MODES)}, got {mode!r}")


def plan_balance(train_df: pd.DataFrame, strategy: str = "upsample",
                 target_per_class: int | None = None, seed: int = 0,
                 filter_train: bool = True) -> BalancePlan:
    """Decide, from train rows only, how to even out the classes.

    upsample: every class below the target (default: the largest class) gets augmented copies
    of its own train images, each image reused as evenly as possible; classes above it stay
    whole. downsample: classes above the target (default: the smallest class) are trimmed to
    it at random. class_weights: data untouched, "balanced" weights returned. none: nothing.
    Rows not in the train split are dropped with a warning (filter_train=True) or refused.
    """
    check_balance(strategy)
    if target_per_class is not None and (
            isinstance(target_per_class, bool) or not isinstance(target_per_class, (int, np.integer))
            or target_per_class < 1):
        raise ConfigError(f"target_per_class must be a positive integer, got {target_per_class!r}")
    train = _train_rows(train_df, filter_train)
    y = train["expression"].astype(int).to_numpy()
    before = pd.Series(y).value_counts().sort_index()
    plan = BalancePlan(strategy, target_per_class, seed, before, train, _empty_generate())
    rng = np.random.default_rng(seed)
    if strategy == "upsample" and len(train):
        target = int(target_per_class or before.max())
        plan.target_per_class = target
        plan.generate = _upsample(train, y, target, rng)
        above = [int(c) for c, n in before.items() if n > target]
        if above:
            plan.notes.append(f"classes {above} already exceed {target} rows and are kept whole")
        if few := few_faces_line(before, target):
            plan.notes.append(few)  # notebook 03 prints the notes: said once there
            terminal(few)
    elif strategy == "downsample" and len(train):
        target = int(target_per_class or before.min())
        plan.target_per_class = target
        keep = [np.flatnonzero(y == c) if n <= target
                else np.sort(rng.choice(np.flatnonzero(y == c), target, replace=False))
                for c, n in before.items()]
        plan.keep = train.iloc[np.sort(np.concatenate(keep))]
    elif strategy == "class_weights" and len(train):
        classes = before.index.to_numpy()
        weights = compute_class_weight("balanced", classes=classes, y=y)
        plan.class_weights = {int(c): float(w) for c, w in zip(classes, weights)}
    return plan


def few_faces_line(before: pd.Series, target: int) -> str | None:
    """What upsampling says of classes with fewer than FEW_TO_UPSAMPLE faces brought up to the
    target: their copies are augmentations of the same one or two faces, which a model
    memorises rather than learns from."""
    few = [(int(c), int(n)) for c, n in before.items() if 0 < n < min(FEW_TO_UPSAMPLE, target)]
    if not few:
        return None
    named = ", ".join(
        f"{EXPRESSIONS[c]}: {n} face{'s' if n > 1 else ''} repeated {target - n} times"
        for c, n in few
    )
    one = len(few) == 1
    return (f"upsampled from too few faces ({named}, to {target} each): the model will memorise "
            f"{'it' if one else 'them'} rather than learn the class; add faces, or take "
            f"{'it' if one else 'them'} out of the data")


def _train_rows(df: pd.DataFrame, filter_train: bool) -> pd.DataFrame:
    """Train rows only: augmenting anything else would leak evaluation faces into training."""
    if "split" not in df.columns:
        raise LeakageError("records table", "no 'split' column; assign splits before balancing")
    is_train = (df["split"] == "train").fillna(False).to_numpy(bool)
    if not is_train.all():
        other = df.loc[~is_train, "split"].astype(object).fillna("(none)").value_counts()
        counts = ", ".join(f"{s}: {n}" for s, n in other.items())
        if not filter_train:
            raise LeakageError("records table", f"balancing takes train rows only; found {counts}")
        warnings.warn(f"plan_balance: using train rows only, ignored {counts}", stacklevel=3)
    train = df.loc[is_train]
    if train["expression"].isna().any():
        raise DataError("records table",
                        f"{int(train['expression'].isna().sum())} train rows have no expression")
    return train


def _empty_generate() -> pd.DataFrame:
    """The generate table with its columns even when nothing is generated."""
    return pd.DataFrame({"id": pd.Series(dtype=object), "source": pd.Series(dtype=object),
                         "source_id": pd.Series(dtype=object), "expression": pd.Series(dtype=int),
                         "transform_seed": pd.Series(dtype=np.int64)})


def _upsample(train: pd.DataFrame, y: np.ndarray, target: int,
              rng: np.random.Generator) -> pd.DataFrame:
    """Rows to generate: copies of each short class's own images, cycled in a seeded order."""
    parts = []
    sources = train["source"].astype(str).to_numpy() if "source" in train.columns else None
    ids = train["id"].astype(str).to_numpy()
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        missing = target - len(rows)
        if missing <= 0:
            continue
        order = rows[rng.permutation(len(rows))]
        k = np.arange(missing)
        chosen = order[k % len(rows)]
        copy_no = k // len(rows)
        parts.append(pd.DataFrame({
            "id": [f"{ids[i]}_aug{j}" for i, j in zip(chosen, copy_no)],
            "source": sources[chosen] if sources is not None else None,
            "source_id": ids[chosen],
            "expression": np.full(missing, c, dtype=int),
            "transform_seed": rng.integers(0, _MAX_SEED, size=missing, dtype=np.int64),
        }))
    return pd.concat(parts, ignore_index=True) if parts else _empty_generate()


# ---------------------------------------------------------------------------------------------
# Writing augmented copies


def materialize(plan: BalancePlan, records: pd.DataFrame, cfg: AugmentConfig,
                out_dir: str | os.PathLike, image_size: int | None = None,
                progress: bool = True, image_format: str = "png",
                workers: int | None = None) -> pd.DataFrame:
    """Write the plan's augmented copies under out_dir/images and return their records.

    The manifest has the records schema plus source_id, transform_seed and augmented=True;
    landmarks are moved with the image, valence/arousal copied. Same plan and config give
    byte-identical files, whatever the number of worker threads. Each file is written under
    a temporary name and renamed, so an interrupted run leaves no half-written image. The
    manifest is also saved as out_dir/manifest.parquet. image_format "jpg" (quality 95) is
    much faster to encode than the lossless default "png".
    """
    check_image_format(image_format)
    if image_size is not None and (isinstance(image_size, bool)
                                   or not isinstance(image_size, (int, np.integer))
                                   or image_size < 8):
        raise ConfigError(f"image_size must be an integer >= 8 or None, got {image_size!r}")
    check_no_leakage(records, plan.generate)
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    for stale in images_dir.glob("*.part"):
        stale.unlink()
    gen = plan.generate.reset_index(drop=True)
    if progress and len(gen):  # decoding, augmenting and encoding each: the long step of 03
        line(f"writing {counted(len(gen), 'augmented copy', 'augmented copies')} ...")
    by_source = "source" in records.columns and gen["source"].notna().all()
    lookup = {k: i for i, k in enumerate(_row_keys(records, "id", by_source))}
    # Copies grouped by source image, so each image is decoded once.
    jobs: dict[int, list[int]] = {}
    for i, key in enumerate(_row_keys(gen, "source_id", by_source)):
        jobs.setdefault(lookup[key], []).append(i)
    new_ids, source_ids = gen["id"].tolist(), gen["source_id"].astype(str).tolist()
    seeds = gen["transform_seed"].astype(np.int64).tolist()
    classes = gen["expression"].astype(int).tolist()

    def copies_of(item: tuple[int, list[int]]) -> list[tuple[int, dict[str, Any]]]:
        """All planned copies of one source image."""
        src = records.iloc[item[0]]
        image = read_image(src["image"])
        pts = _landmarks_or_none(src.get("landmarks"))
        if image_size is not None:
            image, pts = resize_with_landmarks(image, pts, int(image_size))
        done = []
        for i in item[1]:
            out_img, out_pts = augment(image, pts, cfg, seeds[i])
            path = images_dir / f"{i:06d}_{_safe_name(source_ids[i])}.{image_format}"
            _write_image_atomic(path, out_img)
            done.append((i, {
                "id": new_ids[i], "image": str(path.resolve()), "source": src.get("source"),
                "expression": classes[i], "valence": src.get("valence", np.nan),
                "arousal": src.get("arousal", np.nan), "landmarks": out_pts, "split": "train",
                "source_id": source_ids[i], "transform_seed": seeds[i], "augmented": True,
            }))
        return done

    rows: list[dict[str, Any] | None] = [None] * len(gen)
    n_workers = workers or min(4, os.cpu_count() or 1)
    with progress_bar(total=len(gen), desc="augmenting", unit="img", disable=not progress) as bar, \
            ThreadPoolExecutor(n_workers) as pool:
        futures = [pool.submit(copies_of, item) for item in jobs.items()]
        try:
            for future in as_completed(futures):
                for i, row in future.result():
                    rows[i] = row
                bar.update(len(future.result()))
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    manifest = make_records(pd.DataFrame(rows, columns=list(_MANIFEST_COLUMNS)),
                            where=str(out_dir / "manifest.parquet"))
    manifest["transform_seed"] = manifest["transform_seed"].astype(np.int64)
    manifest["augmented"] = manifest["augmented"].astype(bool)
    save_records(manifest, out_dir / "manifest.parquet")
    return manifest


_MANIFEST_COLUMNS = ("id", "image", "source", "expression", "valence", "arousal", "landmarks",
                     "split", "source_id", "transform_seed", "augmented")


def planned_copies(plan: BalancePlan, records: pd.DataFrame) -> pd.DataFrame:
    """The plan's copies as rows pointing at their source image, for online-only augmentation.

    Nothing is written: the training pipeline augments every epoch, so a repeated row becomes a
    different image each time. Same columns as the manifest that `materialize` returns.
    """
    check_no_leakage(records, plan.generate)
    gen = plan.generate.reset_index(drop=True)
    by_source = "source" in records.columns and gen["source"].notna().all()
    lookup = {k: i for i, k in enumerate(_row_keys(records, "id", by_source))}
    src = records.iloc[[lookup[k] for k in _row_keys(gen, "source_id", by_source)]].reset_index(drop=True)
    rows = pd.DataFrame({
        "id": gen["id"].astype(str), "image": src["image"], "source": src["source"],
        "expression": gen["expression"].astype(int), "valence": src["valence"],
        "arousal": src["arousal"], "landmarks": src["landmarks"], "split": "train",
        "source_id": gen["source_id"].astype(str),
        "transform_seed": gen["transform_seed"].astype(np.int64), "augmented": True,
    }, columns=list(_MANIFEST_COLUMNS))
    return rows


def balanced_training_table(records: pd.DataFrame, plan: BalancePlan,
                            manifest: pd.DataFrame) -> pd.DataFrame:
    """The final train table: kept originals plus augmented copies, flagged by `augmented`."""
    check_no_leakage(records, manifest)
    by_source = "source" in records.columns and "source" in plan.keep.columns
    kept_keys = set(_row_keys(plan.keep, "id", by_source))
    mask = np.array([k in kept_keys for k in _row_keys(records, "id", by_source)], dtype=bool)
    kept = records.loc[mask].copy()
    if (kept["split"] != "train").any():
        raise LeakageError("records table", "the plan keeps rows that are not in the train split")
    kept["source_id"] = kept["id"].astype(str)
    kept["transform_seed"] = pd.array([pd.NA] * len(kept), dtype="Int64")
    kept["augmented"] = False
    extra = manifest.copy()
    extra["transform_seed"] = extra["transform_seed"].astype("Int64")
    table = pd.concat([kept, extra], ignore_index=True)
    table["augmented"] = table["augmented"].astype(bool)
    return table


def _row_keys(df: pd.DataFrame, column: str, by_source: bool) -> list:
    """(source, id) pairs, since ids are only unique within a source."""
    ids = df[column].astype(str)
    return list(zip(df["source"].astype(str), ids)) if by_source else list(ids)


def _landmarks_or_none(value: Any) -> np.ndarray | None:
    """Records hold None (or NaN after some round trips) where a face has no landmarks."""
    if value is None:
        return None
    pts = np.asarray(value, dtype=np.float32)
    if pts.size != N_POINTS * 2 or np.isnan(pts).all():
        return None
    return pts.reshape(N_POINTS, 2)


def _safe_name(text: str, limit: int = 60) -> str:
    """A file-name-safe rendering of an id (ids may hold slashes from folder sources)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-limit:] or "image"


def _write_image_atomic(path: Path, image: np.ndarray) -> None:
    """Encode then rename into place, so readers never see a truncated file."""
    ext = path.suffix.lower()
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
    ok, data = cv2.imencode(ext, pixels, params)
    if not ok:
        raise DataError(path, "could not encode the augmented image")
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk names the file it could not write
        raise DataError(path, f"cannot write the augmented image ({exc.strerror or exc})") from exc
    finally:
        if tmp.exists():
            tmp.unlink()
