"""The embedded demo dataset: procedurally drawn faces in the exact AffectNet zip layout.

Real AffectNet cannot ship, so the pipeline runs on a stand-in that has the same zip layout,
the same annotation files and the same label codes (including invalid ones), and whose
expressions are bold enough that a small CNN demonstrably learns them. Every face is drawn
from its 68 iBUG landmarks, so the stored `lnd` is exact ground truth for the stored image.

    python -m helpers.synthetic --out data/demo.zip [--n 4000] [--seed 0] [--size 224] [--balanced]
"""
from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from helpers.core.progress import bar as progress_bar

from helpers.core.errors import ConfigError, DataError
from helpers.core.helptext import HelpFormatter
from helpers.core.labels import EXPRESSIONS, N_EXPRESSIONS
from helpers.core.landmarks import FLIP_PERMUTATION, N_POINTS

# AffectNet's imbalance, softened so that small demo sets still hold every class.
CLASS_SHARES: tuple[float, ...] = (0.22, 0.30, 0.10, 0.08, 0.07, 0.05, 0.13, 0.05)
# (valence, arousal) of each expression at full intensity, AffectNet order.
CIRCUMPLEX: tuple[tuple[float, float], ...] = (
    (0.0, 0.0), (0.8, 0.4), (-0.7, -0.4), (0.3, 0.8),
    (-0.6, 0.75), (-0.7, 0.35), (-0.6, 0.7), (-0.45, 0.25),
)
VA_NOISE = 0.06
INTENSITY_RANGE = (0.5, 1.0)
OCCLUDER_PROB = 0.08
INVALID_EXP_CODES = ("-2", "9")   # AffectNet-style codes for uncertain / no face

ROOT = "Dataset/Dataset/"
IMAGES_DIR = ROOT + "images/"
ANNOTATIONS_DIR = ROOT + "annotations/"
ANNOTATION_KINDS = ("exp", "val", "aro", "lnd")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_DEFLATE_LEVEL = 6
_MIN_SIZE = 32

# Canonical face frame: x to the image right, y down, face half-width 1. The face's vertical
# middle sits at y = _CENTRE_Y, which the pixel transform maps to the image centre (plus shift).
_CENTRE_Y = 0.12
_EYE_Y = -0.30
_BROW_Y = -0.60
_SHIFT = 4                        # cv2 sub-pixel bits: coordinates in 1/16 px
_ONE = float(1 << _SHIFT)


@dataclass(frozen=True)
class Occluder:
    """Something in front of the face (hand, hair strand, sticker) so cues are sometimes hidden."""

    kind: str                      # "bar" or "blob"
    centre: tuple[float, float]    # canonical face units
    length: float                  # bar length, or blob x semi-axis
    thickness: float               # bar thickness, or blob y semi-axis
    angle: float                   # degrees, in the face frame
    color: tuple[int, int, int]


@dataclass(frozen=True)
class FaceParams:
    """Everything that fixes one drawn face, so it can be re-rendered, mirrored or inspected."""

    expression: int
    intensity: float
    # pose: roll in degrees, face half-width as a share of the image side, centre shift as shares
    roll: float
    scale: float
    shift: tuple[float, float]
    # identity (left/right symmetric; ~1.0 is average)
    face_width: float
    face_length: float
    eye_spacing: float
    eye_size: float
    eye_tilt: float
    brow_height: float
    brow_thickness: float
    nose_length: float
    nose_width: float
    mouth_width: float
    mouth_y: float
    lip_upper: float
    lip_lower: float
    crease: float
    hair: float                    # 0 bald .. 1 long hair
    # sided things a mirror must swap
    gaze: float                    # iris offset along x, share of the eye half-width
    contempt_side: int             # +1: the raised lip corner is on the image right
    jitter: tuple[float, ...]      # 136 canonical offsets x0, y0, x1, y1, ...
    # appearance
    skin: tuple[int, int, int]
    hair_color: tuple[int, int, int]
    iris_color: tuple[int, int, int]
    clothes_color: tuple[int, int, int]
    background: tuple[int, int, int]
    # photographic nuisances
    light_angle: float             # radians, direction the light gets brighter towards
    light_strength: float
    brightness: float
    blur_sigma: float              # pixels at 224 px, scaled with the image
    noise_sigma: float             # grey levels
    jpeg_quality: int
    nuisance_seed: int             # background clutter and sensor noise
    occluder: Occluder | None = None
    mirrored: bool = False         # draw the seeded background/noise/light mirrored


# --------------------------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------------------------

_ACTION_FIELDS = (
    "brow_raise", "brow_inner", "brow_outer", "brow_together", "upper_lid", "lower_lid",
    "jaw_drop", "mouth_open", "mouth_wide", "corner_lift", "side_lift", "side_out",
    "upper_lip_raise", "lip_press", "teeth", "nostril_raise", "folds", "side_fold",
    "nose_wrinkle", "glabella", "forehead", "forehead_span", "cheek",
)
# FACS-inspired prototypes at full intensity, in canonical face units (positive = up/wider/more).
_PROTOTYPES: dict[int, dict[str, float]] = {
    0: {},
    1: dict(corner_lift=0.26, mouth_open=0.11, mouth_wide=0.10, teeth=1.0, folds=1.0,
            cheek=1.0, lower_lid=-0.035, upper_lid=-0.02),
    2: dict(corner_lift=-0.22, brow_inner=0.22, brow_outer=-0.06, upper_lid=-0.03,
            mouth_wide=-0.04, lip_press=0.2, forehead=0.5, forehead_span=0.2),
    3: dict(brow_raise=0.20, upper_lid=0.075, lower_lid=0.025, jaw_drop=0.24, mouth_open=0.32,
            mouth_wide=-0.13, forehead=1.0, forehead_span=0.45),
    4: dict(brow_raise=0.10, brow_inner=0.10, brow_together=0.06, upper_lid=0.075,
            lower_lid=-0.01, mouth_wide=0.15, mouth_open=0.10, corner_lift=-0.07,
            jaw_drop=0.06, forehead=0.6, forehead_span=0.25),
    5: dict(brow_raise=-0.08, brow_together=0.03, upper_lid=-0.03, lower_lid=-0.03,
            upper_lip_raise=0.10, mouth_open=0.02, teeth=1.0, corner_lift=-0.07,
            nostril_raise=0.05, folds=0.9, nose_wrinkle=1.0),
    6: dict(brow_raise=-0.07, brow_inner=-0.10, brow_together=0.07, upper_lid=-0.04,
            lower_lid=-0.025, lip_press=1.0, mouth_wide=-0.08, corner_lift=-0.02,
            glabella=1.0),
    7: dict(side_lift=0.26, side_out=0.07, side_fold=1.0, upper_lid=-0.01),
}
_UNSCALED = frozenset({"teeth", "forehead_span"})     # shares and sizes, not amplitudes


def _action(expression: int, intensity: float) -> dict[str, float]:
    """The expression's muscle actions scaled by intensity, so geometry follows one table."""
    proto = _PROTOTYPES[expression]
    return {k: proto.get(k, 0.0) * (1.0 if k in _UNSCALED else intensity)
            for k in _ACTION_FIELDS}


# --------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------

def _mouth_params(p: FaceParams, act: dict[str, float], tip_y: float) -> dict[str, float]:
    """Mouth centre, widths and lifts, shared by the landmarks and the teeth drawing."""
    return dict(
        my=tip_y + 0.36 * p.mouth_y + 0.3 * act["jaw_drop"],
        mw=0.34 * p.mouth_width + act["mouth_wide"],
        gap=act["mouth_open"],
        raise_=act["upper_lip_raise"],
        tu=0.07 * p.lip_upper * (1 - 0.75 * act["lip_press"]),
        tl=0.09 * p.lip_lower * (1 - 0.75 * act["lip_press"]),
    )


def _mouth_point(p: FaceParams, act: dict[str, float], m: dict[str, float], u: float,
                 part: str) -> tuple[float, float]:
    """One mouth point at position u in [-1, 1] (image left to right), per lip contour."""
    side = 1 if u > 0 else -1
    lift = act["corner_lift"] + (act["side_lift"] if side == p.contempt_side else 0.0)
    out = act["side_out"] if side == p.contempt_side else 0.0
    x = u * (m["mw"] + out)
    line = m["my"] - lift * u * u
    c = math.sqrt(max(0.0, 1.0 - (u / 0.85) ** 2))   # opening profile, closed at inner corners
    g = math.sqrt(max(0.0, 1.0 - u * u))             # lip thickness profile
    if part == "inner_upper":
        return x, line - (m["gap"] / 2 + m["raise_"]) * c
    if part == "inner_lower":
        return x, line + m["gap"] / 2 * c
    if part == "outer_upper":
        bow = 0.018 * math.exp(-(((abs(u) - 0.3) / 0.14) ** 2))
        return x, line - (m["gap"] / 2 + m["raise_"]) * c - m["tu"] * g - bow
    return x, line + m["gap"] / 2 * c + m["tl"] * g


# (u, contour) per point, iBUG order 48-59 then 60-67
_OUTER_LIP = ((-1, "outer_upper"), (-0.6, "outer_upper"), (-0.3, "outer_upper"),
              (0, "outer_upper"), (0.3, "outer_upper"), (0.6, "outer_upper"),
              (1, "outer_upper"), (0.6, "outer_lower"), (0.3, "outer_lower"),
              (0, "outer_lower"), (-0.3, "outer_lower"), (-0.6, "outer_lower"))
_INNER_LIP = ((-0.85, "inner_upper"), (-0.4, "inner_upper"), (0, "inner_upper"),
              (0.4, "inner_upper"), (0.85, "inner_upper"), (0.4, "inner_lower"),
              (0, "inner_lower"), (-0.4, "inner_lower"))
# Eye contour in image order: left corner, two upper, right corner, two lower (iBUG 36-41, 42-47).
_EYE_U = (-1.0, -1 / 3, 1 / 3, 1.0, 1 / 3, -1 / 3)
_EYE_UPPER = (None, True, True, None, False, False)


def _canonical_landmarks(p: FaceParams) -> np.ndarray:
    """The 68 points in the face frame; left/right symmetric but for the contempt side."""
    act = _action(p.expression, p.intensity)
    pts = np.zeros((N_POINTS, 2), dtype=np.float64)

    # jaw 0-16: from the image-left temple round the chin
    th = -0.2 + (math.pi + 0.4) * np.arange(17) / 16
    down = np.clip(np.sin(th), 0.0, None)
    pts[0:17, 0] = -np.cos(th) * p.face_width * (1 - 0.22 * down ** 3)
    pts[0:17, 1] = -0.25 + np.sin(th) * 1.05 * p.face_length + act["jaw_drop"] * down ** 2

    eye_dx = 0.40 * p.eye_spacing
    ew = 0.16 * p.eye_size
    hu = max(0.02, 0.085 * p.eye_size + act["upper_lid"])
    hl = max(0.012, 0.06 * p.eye_size + act["lower_lid"])
    eye_top = _EYE_Y - hu

    # brows 17-21 (image left, outer to inner) and 22-26 (inner to outer)
    t = np.linspace(0.0, 1.0, 5)                     # 0 inner, 1 outer
    x_in = eye_dx - 0.26 - act["brow_together"]
    x_out = eye_dx + 0.36
    by = (_BROW_Y + p.brow_height - 0.09 * np.sin(math.pi * (0.15 + 0.75 * t))
          - act["brow_raise"] - act["brow_inner"] * (1 - t) ** 1.5 - act["brow_outer"] * t ** 1.5)
    by = np.minimum(by, eye_top - 0.06)
    bx = x_in + t * (x_out - x_in)
    pts[17:22] = np.c_[-bx[::-1], by[::-1]]
    pts[22:27] = np.c_[bx, by]

    # eyes 36-41 and 42-47
    for sgn, start in ((-1, 36), (1, 42)):
        for k, (u_img, upper) in enumerate(zip(_EYE_U, _EYE_UPPER)):
            u_out = u_img * sgn                      # -1 inner corner, +1 outer corner
            y = _EYE_Y - p.eye_tilt * u_out
            if upper is not None:
                lid = (1 - u_out * u_out) ** 0.6
                y += -hu * lid if upper else hl * lid
            pts[start + k] = (sgn * (eye_dx + u_out * ew), y)

    # nose 27-35
    tip_y = _EYE_Y + 0.40 * p.nose_length
    pts[27:31, 1] = np.linspace(_EYE_Y, tip_y, 4)
    base_y = tip_y + 0.10 - act["nostril_raise"]
    nw = 0.16 * p.nose_width + 0.5 * act["nostril_raise"]
    pts[31:36] = np.c_[[-nw, -nw / 2, 0.0, nw / 2, nw],
                       [base_y - 0.02, base_y + 0.015, base_y + 0.03, base_y + 0.015,
                        base_y - 0.02]]

    # mouth 48-67
    m = _mouth_params(p, act, tip_y)
    for k, (u, part) in enumerate(_OUTER_LIP + _INNER_LIP):
        pts[48 + k] = _mouth_point(p, act, m, u, part)

    return pts + np.asarray(p.jitter, dtype=np.float64).reshape(N_POINTS, 2)


def _transform(p: FaceParams, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotation matrix, pixel centre and scale mapping the face frame into the image."""
    a = math.radians(p.roll)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    # pixel-centre convention: the middle of a size-px image is (size-1)/2
    centre = np.array([(size - 1) / 2 + p.shift[0] * size, (size - 1) / 2 + p.shift[1] * size])
    return rot, centre, p.scale * size


def _to_pixels(p: FaceParams, pts: np.ndarray, size: int) -> np.ndarray:
    """Map face-frame points to image pixels (roll, scale, shift)."""
    rot, centre, s = _transform(p, size)
    rel = np.asarray(pts, dtype=np.float64) - (0.0, _CENTRE_Y)
    return centre + s * rel @ rot.T


def face_landmarks(p: FaceParams, size: int) -> np.ndarray:
    """The 68 landmarks in pixels of the size x size image, exactly where they are drawn."""
    return _to_pixels(p, _canonical_landmarks(p), size).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------

_SKIN_LIGHT = np.array([238.0, 200.0, 174.0])
_SKIN_DARK = np.array([88.0, 56.0, 40.0])
_HAIR = np.array([(25, 20, 18), (58, 38, 24), (105, 72, 40), (175, 135, 85),
                  (190, 185, 175), (125, 50, 25)], dtype=np.float64)
_IRIS = np.array([(85, 55, 30), (45, 30, 20), (70, 110, 150), (80, 110, 70), (120, 95, 55)],
                 dtype=np.float64)


def _color(rgb: np.ndarray) -> tuple[int, int, int]:
    """A hashable, clipped RGB triple."""
    c = np.clip(np.rint(rgb), 0, 255).astype(int)
    return int(c[0]), int(c[1]), int(c[2])


def _sample_occluder(rng: np.random.Generator) -> Occluder:
    """A bar or blob over part of the face, never big enough to hide all of it."""
    kind = "bar" if rng.uniform() < 0.5 else "blob"
    centre = (float(rng.uniform(-0.7, 0.7)), float(rng.uniform(-0.6, 0.9)))
    if kind == "bar":
        length, thick = float(rng.uniform(0.6, 1.4)), float(rng.uniform(0.10, 0.22))
    else:
        length, thick = float(rng.uniform(0.14, 0.30)), float(rng.uniform(0.14, 0.30))
    return Occluder(kind, centre, length, thick, float(rng.uniform(-90, 90)),
                    _color(rng.uniform(0, 255, 3)))


def sample_face_params(rng: np.random.Generator, expression: int, size: int = 224) -> FaceParams:
    """Draw one random face of the given expression, with every landmark inside the image."""
    if not 0 <= int(expression) < N_EXPRESSIONS:
        raise ConfigError(f"expression must be 0..{N_EXPRESSIONS - 1}, got {expression!r}")
    u = rng.uniform
    skin = _SKIN_LIGHT + u(0, 1) * (_SKIN_DARK - _SKIN_LIGHT) + rng.normal(0, 5, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 8, 3)
    iris = _IRIS[rng.integers(len(_IRIS))] + rng.normal(0, 6, 3)
    p = FaceParams(
        expression=int(expression),
        intensity=float(u(*INTENSITY_RANGE)),
        roll=float(u(-15, 15)), scale=float(u(0.27, 0.34)),
        shift=(float(u(-0.05, 0.05)), float(u(-0.05, 0.05))),
        face_width=float(u(0.92, 1.05)), face_length=float(u(0.92, 1.08)),
        eye_spacing=float(u(0.94, 1.06)), eye_size=float(u(0.88, 1.12)),
        eye_tilt=float(u(-0.01, 0.025)), brow_height=float(u(-0.03, 0.03)),
        brow_thickness=float(u(0.8, 1.25)), nose_length=float(u(0.9, 1.1)),
        nose_width=float(u(0.85, 1.2)), mouth_width=float(u(0.9, 1.1)),
        mouth_y=float(u(0.92, 1.08)), lip_upper=float(u(0.75, 1.25)),
        lip_lower=float(u(0.75, 1.25)), crease=float(u(0.0, 0.3)),
        hair=float(u(0.0, 1.0)),
        gaze=float(u(-0.3, 0.3)),
        contempt_side=int(rng.choice((-1, 1))),
        jitter=tuple(rng.normal(0.0, 0.008, 2 * N_POINTS).tolist()),
        skin=_color(skin), hair_color=_color(hair), iris_color=_color(iris),
        clothes_color=_color(u(20, 235, 3)), background=_color(u(10, 245, 3)),
        light_angle=float(u(-math.pi, math.pi)), light_strength=float(u(0.0, 0.35)),
        brightness=float(u(0.8, 1.12)),
        blur_sigma=float(u(0.3, 1.3)) if u() < 0.5 else 0.0,
        noise_sigma=float(u(0.0, 8.0)),
        jpeg_quality=int(rng.integers(55, 96)),
        nuisance_seed=int(rng.integers(0, 2 ** 63 - 1)),
    )
    occluder = _sample_occluder(rng) if u() < OCCLUDER_PROB else None
    p = replace(p, occluder=occluder)
    margin = 1.0
    for _ in range(30):   # shrink towards the centre until the whole face is in the image
        lnd = face_landmarks(p, size)
        if lnd.min() >= margin and lnd.max() <= size - 1 - margin:
            break
        p = replace(p, scale=p.scale * 0.95, shift=(p.shift[0] * 0.7, p.shift[1] * 0.7))
    return p


def mirror_params(p: FaceParams) -> FaceParams:
    """The horizontally mirrored face: landmarks equal flip_landmarks of the original's."""
    jit = np.asarray(p.jitter, dtype=np.float64).reshape(N_POINTS, 2).copy()
    jit[:, 0] = -jit[:, 0]
    occ = p.occluder
    if occ is not None:
        occ = replace(occ, centre=(-occ.centre[0], occ.centre[1]), angle=-occ.angle)
    return replace(
        p, roll=-p.roll, shift=(-p.shift[0], p.shift[1]), gaze=-p.gaze,
        contempt_side=-p.contempt_side, jitter=tuple(jit[FLIP_PERMUTATION].ravel().tolist()),
        occluder=occ, mirrored=not p.mirrored,
    )


def valence_arousal(p: FaceParams, rng: np.random.Generator) -> tuple[float, float]:
    """Circumplex position of the expression scaled by intensity, plus annotator-like noise."""
    cv, ca = CIRCUMPLEX[p.expression]
    v = cv * p.intensity + rng.normal(0.0, VA_NOISE)
    a = ca * p.intensity + rng.normal(0.0, VA_NOISE)
    return float(np.clip(v, -1.0, 1.0)), float(np.clip(a, -1.0, 1.0))


# --------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------

def _fix(pts: np.ndarray) -> np.ndarray:
    """Pixel coordinates as cv2 fixed-point integers (sub-pixel accurate, anti-aliased)."""
    return np.rint(np.asarray(pts, dtype=np.float64).reshape(-1, 2) * _ONE).astype(np.int32)


def _fill(img: np.ndarray, pts: np.ndarray, color: tuple) -> None:
    """Anti-aliased filled polygon."""
    cv2.fillPoly(img, [_fix(pts)], color, cv2.LINE_AA, _SHIFT)


def _stroke(img: np.ndarray, pts: np.ndarray, color: tuple, thick: int,
            closed: bool = False) -> None:
    """Anti-aliased polyline."""
    cv2.polylines(img, [_fix(pts)], closed, color, max(1, int(thick)), cv2.LINE_AA, _SHIFT)


def _spline(pts: np.ndarray, closed: bool, per: int = 6) -> np.ndarray:
    """Catmull-Rom curve through the points, so drawn outlines pass through the landmarks."""
    p = np.asarray(pts, dtype=np.float64)
    ext = np.vstack([p[-1], p, p[0], p[1]]) if closed else np.vstack([p[0], p, p[-1]])
    n_seg = len(p) if closed else len(p) - 1
    t = np.linspace(0.0, 1.0, per, endpoint=False)[None, :, None]
    p0, p1, p2, p3 = (ext[i:i + n_seg][:, None, :] for i in range(4))
    seg = 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                 + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3)
    out = seg.reshape(-1, 2)
    return out if closed else np.vstack([out, p[-1:]])


def _ellipse(cx: float, cy: float, ax: float, ay: float, angle: float = 0.0,
             n: int = 36) -> np.ndarray:
    """Ellipse outline points in the face frame (angle in degrees)."""
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    a = math.radians(angle)
    x, y = ax * np.cos(t), ay * np.sin(t)
    return np.c_[cx + x * math.cos(a) - y * math.sin(a), cy + x * math.sin(a) + y * math.cos(a)]


def _shade(color: tuple, factor: float) -> tuple[float, float, float]:
    """A darker or lighter version of a colour, for creases and shadows."""
    return tuple(float(min(255.0, c * factor)) for c in color)


def _clipped(img: np.ndarray, clip_px: np.ndarray,
             draw: Callable[[np.ndarray, np.ndarray], None]) -> None:
    """Run draw(sub_image, offset) but keep only what falls inside the clip polygon."""
    h, w = img.shape[:2]
    x0, y0 = np.floor(clip_px.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(clip_px.max(axis=0)).astype(int) + 3
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1]
    off = np.array([x0, y0], dtype=np.float64)
    layer = roi.copy()
    draw(layer, off)
    mask = np.zeros(roi.shape[:2], np.uint8)
    _fill(mask, clip_px - off, (255,))
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    roi[:] = np.rint(roi * (1 - alpha) + layer * alpha).astype(np.uint8)


def _background(p: FaceParams, rng: np.random.Generator, size: int) -> np.ndarray:
    """Plain colour plus random clutter shapes, from the nuisance seed."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = p.background
    for _ in range(int(rng.integers(3, 10))):
        kind = int(rng.integers(4))
        color = _color(rng.uniform(0, 255, 3))
        c = rng.uniform(-0.1, 1.1, 2) * size
        r = rng.uniform(0.05, 0.3) * size
        if kind == 0:
            _fill(img, c + r * np.c_[np.cos(np.linspace(0, 6.28, 32)),
                                     np.sin(np.linspace(0, 6.28, 32))], color)
        elif kind == 1:
            _fill(img, c + rng.uniform(-1, 1, (4, 2)) * r, color)
        elif kind == 2:
            _stroke(img, np.vstack([c, c + rng.uniform(-2, 2, 2) * r]), color,
                    max(1, int(rng.uniform(0.01, 0.04) * size)))
        else:
            _fill(img, c + rng.uniform(-1, 1, (3, 2)) * r, color)
    return img


def _draw_head(img: np.ndarray, p: FaceParams, lnd: np.ndarray, size: int) -> None:
    """Clothes, neck, hair, ears and the skin of the face, behind the features."""
    px = lambda pts: _to_pixels(p, pts, size)  # noqa: E731
    skin = p.skin
    c = _canonical_landmarks(p)
    _fill(img, px(_ellipse(0.0, 2.45, 1.9, 0.95)), p.clothes_color)
    _fill(img, px(np.array([[-0.45, 0.3], [0.45, 0.3], [0.55, 2.2], [-0.55, 2.2]])),
          _shade(skin, 0.78))
    top = _BROW_Y - 0.55
    if p.hair > 0.15:   # hair behind the head; long hair falls beside the jaw
        _fill(img, px(_ellipse(0.0, top + 0.55, 1.12 + 0.1 * p.hair, 0.6 + 0.35 * p.hair)),
              p.hair_color)
    for sgn in (-1, 1):
        _fill(img, px(_ellipse(sgn * (abs(c[0, 0]) + 0.02), -0.22, 0.13, 0.24)),
              _shade(skin, 0.9))
    # face: jaw curve closed by a forehead arc over the top
    jaw = _spline(lnd[0:17], closed=False, per=6)
    yc = (c[0, 1] + c[16, 1]) / 2
    half = (c[16, 0] - c[0, 0]) / 2
    phi = np.linspace(0.0, -math.pi, 25)[1:-1]
    arc = np.c_[(c[0, 0] + c[16, 0]) / 2 + half * np.cos(phi), yc + (yc - top) * np.sin(phi)]
    _fill(img, np.vstack([jaw, px(arc)]), skin)
    _stroke(img, jaw[18:-18], _shade(skin, 0.8), max(1, round(0.012 * p.scale * size)))
    if p.hair > 0.15:   # fringe over the forehead edge
        fringe = _ellipse(0.0, top - 0.05, half * 1.02, 0.22 + 0.1 * p.hair)
        _fill(img, px(fringe), p.hair_color)


def _draw_creases(img: np.ndarray, p: FaceParams, act: dict[str, float], c: np.ndarray,
                  size: int) -> None:
    """Folds and wrinkles that carry the expression beyond the landmark outline."""
    s = p.scale * size
    px = lambda pts: _to_pixels(p, pts, size)  # noqa: E731
    thick = max(1, round(0.028 * s))

    def crease(pts: np.ndarray, strength: float) -> None:
        if strength > 0.02:
            shade = _shade(p.skin, 1 - 0.45 * min(strength, 1.0))
            _stroke(img, _spline(px(pts), closed=False), shade, thick)

    for sgn, corner, wing in ((-1, 48, 31), (1, 54, 35)):
        strength = p.crease + act["folds"] + (act["side_fold"] if sgn == p.contempt_side else 0)
        fold = np.array([[c[wing, 0] + sgn * 0.07, c[wing, 1] - 0.05],
                         [c[corner, 0] + sgn * 0.03, (c[wing, 1] + c[corner, 1]) / 2],
                         [c[corner, 0] + sgn * 0.06, c[corner, 1] + 0.08]])
        crease(fold, strength)
        if act["side_fold"] and sgn == p.contempt_side:   # dimple at the tightened corner
            crease(np.array([[c[corner, 0] + sgn * 0.03, c[corner, 1] - 0.07],
                             [c[corner, 0] + sgn * 0.05, c[corner, 1] + 0.05]]), 1.0)
        eye = c[36:42] if sgn < 0 else c[42:48]
        if act["cheek"]:   # raised cheeks push a crease under each eye
            ex, ey, ew = eye[:, 0].mean(), eye[:, 1].max(), np.ptp(eye[:, 0]) / 2
            crease(np.array([[ex - ew, ey + 0.04], [ex, ey + 0.09], [ex + ew, ey + 0.04]]),
                   act["cheek"])
    if act["nose_wrinkle"]:
        for f in (0.35, 0.55, 0.75):
            y = c[27, 1] + f * (c[30, 1] - c[27, 1])
            crease(np.array([[-0.09, y + 0.015], [0.0, y], [0.09, y + 0.015]]),
                   act["nose_wrinkle"])
    if act["glabella"]:
        y = min(c[21, 1], c[22, 1])
        for sgn in (-1, 1):
            crease(np.array([[sgn * 0.045, y + 0.06], [sgn * 0.055, y - 0.14]]), act["glabella"])
    if act["forehead"]:
        top = min(c[17:27, 1])
        span = act["forehead_span"]
        for k in range(3):
            y = top - 0.10 - 0.09 * k
            crease(np.array([[-span, y + 0.03], [0.0, y], [span, y + 0.03]]), act["forehead"])


def _draw_brows(img: np.ndarray, p: FaceParams, lnd: np.ndarray, size: int) -> None:
    """Thick tapered brows whose centre lines run through landmarks 17-26."""
    half = 0.05 * p.brow_thickness * p.scale * size
    color = tuple(float(min(h, 0.5 * s)) for h, s in zip(p.hair_color, p.skin))
    for pts, inner_last in ((lnd[17:22], True), (lnd[22:27], False)):
        line = _spline(pts, closed=False, per=5)
        d = np.gradient(line, axis=0)
        n = np.c_[-d[:, 1], d[:, 0]] / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9)
        t = np.linspace(0.0, 1.0, len(line))        # 0 at the inner end
        if inner_last:
            t = t[::-1]
        h = (half * (1.0 - 0.45 * t))[:, None]
        _fill(img, np.vstack([line + n * h, (line - n * h)[::-1]]), color)


def _draw_eyes(img: np.ndarray, p: FaceParams, c: np.ndarray, lnd: np.ndarray,
               size: int) -> None:
    """Sclera, iris and pupil clipped to the lids, with dark lid lines along the landmarks."""
    s = p.scale * size
    lid = (25, 18, 18)
    for idx in (slice(36, 42), slice(42, 48)):
        outline = _spline(lnd[idx], closed=True, per=6)
        eye = c[idx]
        ew = (eye[:, 0].max() - eye[:, 0].min()) / 2
        centre_c = (eye[0] + eye[3]) / 2 + (p.gaze * ew * 0.5, 0.0)
        centre = _to_pixels(p, centre_c[None], size)[0]
        r_iris = 0.075 * p.eye_size * s
        r_pupil = 0.035 * p.eye_size * s

        def draw(layer: np.ndarray, off: np.ndarray) -> None:
            layer[:] = (238, 236, 230)
            ctr = tuple(int(v) for v in _fix(centre - off)[0])
            cv2.circle(layer, ctr, int(round(r_iris * _ONE)), p.iris_color, -1, cv2.LINE_AA,
                       _SHIFT)
            cv2.circle(layer, ctr, int(round(r_pupil * _ONE)), (8, 8, 8), -1, cv2.LINE_AA,
                       _SHIFT)

        _clipped(img, outline, draw)
        _stroke(img, outline, lid, round(0.02 * s), closed=True)
        upper = _spline(lnd[idx][[0, 1, 2, 3]], closed=False, per=6)
        _stroke(img, upper, lid, round(0.035 * s))


def _draw_nose(img: np.ndarray, p: FaceParams, lnd: np.ndarray, size: int) -> None:
    """A soft bridge shadow and dark nostrils along landmarks 27-35."""
    s = p.scale * size
    _stroke(img, _spline(lnd[27:31], closed=False), _shade(p.skin, 0.86), round(0.03 * s))
    _stroke(img, _spline(lnd[31:36], closed=False), _shade(p.skin, 0.55), round(0.03 * s))
    r = max(1.0, 0.03 * s)
    for k in (32, 34):
        cv2.circle(img, tuple(int(v) for v in _fix(lnd[k] - (0, 0.4 * r))[0]),
                   int(round(r * _ONE)), _shade(p.skin, 0.35), -1, cv2.LINE_AA, _SHIFT)


def _draw_mouth(img: np.ndarray, p: FaceParams, act: dict[str, float], c: np.ndarray,
                lnd: np.ndarray, size: int) -> None:
    """Lips, dark mouth cavity and teeth, outlined along landmarks 48-67."""
    s = p.scale * size
    lip = _color(np.array(p.skin) * (0.78, 0.5, 0.5) + (22, 0, 0))
    outer = _spline(lnd[48:60], closed=True)
    inner = _spline(lnd[60:68], closed=True)
    _fill(img, outer, lip)
    opening = float(np.max(c[65:68, 1] - c[[63, 62, 61], 1]))
    if opening * s > 1.0:
        teeth_h = 0.075 * (1.0 if act["upper_lip_raise"] else 0.8)
        upper_c = c[60:65]
        band = np.vstack([upper_c - (0, 0.05), (upper_c + (0, teeth_h))[::-1]])
        band_px = _to_pixels(p, band, size)

        def draw(layer: np.ndarray, off: np.ndarray) -> None:
            layer[:] = _shade(p.skin, 0.25)
            if act["teeth"]:
                _fill(layer, band_px - off, (236, 230, 214))

        _clipped(img, inner, draw)
    _stroke(img, inner, _shade(lip, 0.45), round(0.02 * s), closed=True)
    _stroke(img, outer, _shade(lip, 0.75), round(0.015 * s), closed=True)


def _draw_occluder(img: np.ndarray, p: FaceParams, size: int) -> None:
    """The occluder, if any, in front of everything else on the face."""
    o = p.occluder
    if o is None:
        return
    if o.kind == "bar":
        a = math.radians(o.angle)
        d = np.array([math.cos(a), math.sin(a)]) * o.length / 2
        n = np.array([-math.sin(a), math.cos(a)]) * o.thickness / 2
        pts = np.array(o.centre) + np.array([-d - n, d - n, d + n, -d + n])
    else:
        pts = _ellipse(o.centre[0], o.centre[1], o.length, o.thickness, o.angle)
    _fill(img, _to_pixels(p, pts, size), o.color)


def _light_map(p: FaceParams, size: int) -> np.ndarray:
    """Brightness times a linear lighting gradient across the image."""
    g = (np.arange(size, dtype=np.float32) - (size - 1) / 2) / (size / 2)
    proj = g[None, :] * math.cos(p.light_angle) + g[:, None] * math.sin(p.light_angle)
    return (p.brightness * (1.0 + p.light_strength * proj)).astype(np.float32)


def render_face(p: FaceParams, size: int = 224) -> tuple[np.ndarray, np.ndarray]:
    """Draw the face: (RGB uint8 size x size x 3 image, (68, 2) float32 landmarks in pixels)."""
    if size < _MIN_SIZE:
        raise ConfigError(f"image size must be at least {_MIN_SIZE} px, got {size}")
    lnd32 = face_landmarks(p, size)
    lnd = lnd32.astype(np.float64)
    c = _canonical_landmarks(p)
    act = _action(p.expression, p.intensity)
    rng = np.random.default_rng(p.nuisance_seed)
    img = _background(p, rng, size)
    # the noise is the last draw from the nuisance stream, so skipping it changes nothing else
    noise = rng.standard_normal((size, size, 3), dtype=np.float32) if p.noise_sigma else None
    light = _light_map(p, size)
    if p.mirrored:   # seeded layers are drawn for the unmirrored face, then flipped
        img, light = img[:, ::-1].copy(), light[:, ::-1]
        noise = None if noise is None else noise[:, ::-1]

    _draw_head(img, p, lnd, size)
    _draw_creases(img, p, act, c, size)
    _draw_brows(img, p, lnd, size)
    _draw_eyes(img, p, c, lnd, size)
    _draw_nose(img, p, lnd, size)
    _draw_mouth(img, p, act, c, lnd, size)
    _draw_occluder(img, p, size)

    out = img.astype(np.float32) * light[..., None]
    if p.blur_sigma > 0:
        out = cv2.GaussianBlur(out, (0, 0), p.blur_sigma * size / 224)
    if noise is not None:
        out += noise * p.noise_sigma
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), lnd32


# --------------------------------------------------------------------------------------------
# The zip
# --------------------------------------------------------------------------------------------

def class_counts(n: int, balanced: bool = False) -> np.ndarray:
    """Exact per-class counts summing to n (largest remainder); every class once if n >= 8."""
    shares = np.full(N_EXPRESSIONS, 1.0 / N_EXPRESSIONS) if balanced else np.array(CLASS_SHARES)
    raw = n * shares / shares.sum()
    counts = np.floor(raw).astype(np.int64)
    order = np.lexsort((np.arange(N_EXPRESSIONS), -(raw - counts)))   # ties: lower class first
    counts[order[: n - counts.sum()]] += 1
    if n >= N_EXPRESSIONS:
        for k in np.flatnonzero(counts == 0):
            counts[int(np.argmax(counts))] -= 1
            counts[k] += 1
    return counts


def _npy(value: np.ndarray) -> bytes:
    """np.save into bytes."""
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    return buf.getvalue()


def _num(x: float) -> str:
    """A label as AffectNet stores it: a decimal string (never '-0.000000')."""
    return f"{round(x, 6) + 0.0:.6f}"


def _zip_info(name: str, compress: int) -> zipfile.ZipInfo:
    """A member header with fixed time, system and permissions, for byte-identical zips."""
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.create_system = 3
    info.compress_type = compress
    if name.endswith("/"):
        info.external_attr = (0o40755 << 16) | 0x10
    else:
        info.external_attr = 0o644 << 16
    return info


def _n_bad(n: int, share: float, what: str) -> int:
    """How many records get a broken exp: the share rounded up, so any positive share shows."""
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"{what} must be in [0, 1), got {share!r}")
    return int(math.ceil(n * share - 1e-9))


def _plan(n: int, seed: int, balanced: bool, invalid_exp_share: float,
          missing_exp_share: float
          ) -> tuple[np.ndarray, list[str | None], list[np.random.SeedSequence]]:
    """Per id: drawn expression, exp string (None = no exp file) and the record's seed."""
    n_invalid = _n_bad(n, invalid_exp_share, "invalid_exp_share")
    n_missing = _n_bad(n, missing_exp_share, "missing_exp_share")
    n_valid = n - n_invalid - n_missing
    if n_valid < 1:
        raise ConfigError(f"n={n} leaves no valid records after {n_invalid} invalid and "
                          f"{n_missing} missing exp labels")
    root = np.random.SeedSequence(int(seed))
    master_seq, *record_seqs = root.spawn(n + 1)
    master = np.random.default_rng(master_seq)
    shares = np.array(CLASS_SHARES) if not balanced else np.full(N_EXPRESSIONS, 1 / N_EXPRESSIONS)
    expr = np.concatenate([
        np.repeat(np.arange(N_EXPRESSIONS), class_counts(n_valid, balanced)),
        master.choice(N_EXPRESSIONS, size=n - n_valid, p=shares / shares.sum()),
    ])
    labels: list[str | None] = [str(int(e)) for e in expr[:n_valid]]
    labels += [str(master.choice(INVALID_EXP_CODES)) for _ in range(n_invalid)]
    labels += [None] * n_missing
    record_of_id = master.permutation(n)      # ids must not reveal the class
    return (expr[record_of_id], [labels[r] for r in record_of_id],
            [record_seqs[r] for r in record_of_id])


def generate_zip(out: str | Path, n: int = 4000, seed: int = 0, size: int = 224,
                 balanced: bool = False, invalid_exp_share: float = 0.01,
                 missing_exp_share: float = 0.005, progress: bool = True,
                 force: bool = False) -> dict:
    """Write the demo dataset as an AffectNet-layout zip; same arguments, same bytes.

    Written under a temporary name beside `out`, then renamed into place, so nobody reads half
    a zip. An `out` that exists, or appears while this one is written (another process made
    it), is a FileExistsError unless `force`; ensure_zip reuses it instead."""
    t0 = time.perf_counter()
    out = Path(out)
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    if size < _MIN_SIZE:
        raise ConfigError(f"image size must be at least {_MIN_SIZE} px, got {size}")
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists")
    expr, labels, seqs = _plan(n, seed, balanced, invalid_exp_share, missing_exp_share)

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for d in ("Dataset/", ROOT, IMAGES_DIR, ANNOTATIONS_DIR):
                zf.writestr(_zip_info(d, zipfile.ZIP_STORED), b"")
            annotations: list[tuple[str, bytes]] = []
            for i in progress_bar(range(n), desc="demo faces", unit="img", disable=not progress, mininterval=1.0):
                rng = np.random.default_rng(seqs[i])
                p = sample_face_params(rng, int(expr[i]), size)
                val, aro = valence_arousal(p, rng)
                img, lnd = render_face(p, size)
                ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                                       [cv2.IMWRITE_JPEG_QUALITY, p.jpeg_quality])
                if not ok:
                    raise RuntimeError(f"OpenCV could not encode image {i} as JPEG")
                zf.writestr(_zip_info(f"{IMAGES_DIR}{i}.jpg", zipfile.ZIP_STORED), jpg.tobytes())
                values = {"exp": labels[i], "val": _num(val), "aro": _num(aro)}
                for kind in ("exp", "val", "aro"):
                    if values[kind] is not None:
                        annotations.append((f"{ANNOTATIONS_DIR}{i}_{kind}.npy",
                                            _npy(np.array(values[kind]))))
                annotations.append((f"{ANNOTATIONS_DIR}{i}_lnd.npy",
                                    _npy(lnd.astype(np.float64).reshape(2 * N_POINTS))))
            for name, data in annotations:
                zf.writestr(_zip_info(name, zipfile.ZIP_DEFLATED), data,
                            compresslevel=_DEFLATE_LEVEL)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        if out.exists() and not force:
            raise FileExistsError(f"{out} appeared while this copy was written (another process "
                                  "wrote it)")
        os.replace(tmp, out)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as exc:  # a full disk: no half zip left, and the message names the file
        tmp.unlink(missing_ok=True)
        raise DataError(out, f"cannot write the demo dataset ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

    valid = [lab for lab in labels if lab is not None and lab not in INVALID_EXP_CODES]
    counts = {name: int(sum(1 for lab in valid if lab == str(k)))
              for k, name in enumerate(EXPRESSIONS)}
    return {
        "path": str(out), "n": n, "size": size, "seed": int(seed), "balanced": bool(balanced),
        "valid": len(valid), "counts": counts,
        "invalid_exp": sum(1 for lab in labels if lab in INVALID_EXP_CODES),
        "missing_exp": sum(1 for lab in labels if lab is None),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def is_whole_zip(path: str | Path) -> bool:
    """Whether a file is a zip that reads to its end, every member's CRC right (not cut short)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


def ensure_zip(out: str | Path, **kwargs) -> Path:
    """The demo zip at `out`, written once (generate_zip's arguments): one that exists, or that
    another process finishes while this one writes (two runs started at once), is kept, since
    the same arguments give the same bytes; a damaged one is a DataError naming it."""
    out = Path(out)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            generate_zip(out, **kwargs)
            return out
        except FileExistsError:
            pass  # the other process's copy, renamed into place whole: checked below
    if not is_whole_zip(out):
        raise DataError(out, "the demo dataset here is damaged or cut short (not a whole zip): "
                             "delete it and run again, which writes it anew")
    return out


def summary_line(summary: dict) -> str:
    """The CLI's one-line report of what was written."""
    counts = ", ".join(f"{k} {v}" for k, v in summary["counts"].items())
    return (f"{summary['path']}: {summary['n']} images {summary['size']}px "
            f"(seed {summary['seed']}; {summary['valid']} valid: {counts}; "
            f"{summary['invalid_exp']} invalid exp, {summary['missing_exp']} missing exp) "
            f"in {summary['seconds']:.1f}s")


SYNTHETIC_EXAMPLES = """examples:
  python -m helpers.synthetic --out data/demo/demo.zip
  python -m helpers.synthetic --out small.zip --n 320 --size 96 --seed 1 --force"""


def main(argv: list[str] | None = None) -> int:
    """Command line: write the demo zip and print a one-line summary."""
    ap = argparse.ArgumentParser(prog="python -m helpers.synthetic",
                                 description=__doc__.splitlines()[0],
                                 formatter_class=HelpFormatter, epilog=SYNTHETIC_EXAMPLES)
    ap.add_argument("--out", required=True, help="zip file to write")
    ap.add_argument("--n", type=int, default=4000, help="number of images")
    ap.add_argument("--seed", type=int, default=0,
                    help="draws the faces, labels and order: same options, same bytes")
    ap.add_argument("--size", type=int, default=224, help="image side in pixels")
    ap.add_argument("--balanced", action="store_true",
                    help="equal class counts (default: AffectNet's class shares)")
    ap.add_argument("--invalid-exp-share", type=float, default=0.01, metavar="SHARE",
                    help="share of records whose expression label is an invalid code, as real "
                    "data has (the readers drop and count them)")
    ap.add_argument("--missing-exp-share", type=float, default=0.005, metavar="SHARE",
                    help="share of records without an expression label file")
    ap.add_argument("--force", action="store_true", help="overwrite an existing file")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)
    try:
        summary = generate_zip(a.out, n=a.n, seed=a.seed, size=a.size, balanced=a.balanced,
                               invalid_exp_share=a.invalid_exp_share,
                               missing_exp_share=a.missing_exp_share, progress=not a.quiet,
                               force=a.force)
    except FileExistsError as e:
        print(f"error: {e}; --force overwrites it", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary_line(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def make_scene(seed: int = 0, n_faces: int = 3, shape: tuple[int, int] = (480, 640),
               face_px: int = 160) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """Upright demo faces pasted left to right into a blurred-noise photo, for the predictor.

    Returns the RGB scene and (x, y, w, h, expression) per face. The faces are frontal and
    unoccluded because the bundled Haar cascade is a frontal-face detector.
    """
    import dataclasses

    rng = np.random.default_rng(seed)
    height, width = shape
    if n_faces < 1 or n_faces * (face_px + 20) + 20 > width or face_px + 40 > height:
        raise ConfigError(f"{n_faces} faces of {face_px} px do not fit a {width}x{height} scene")
    scene = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    placed = []
    gap = (width - n_faces * face_px) // (n_faces + 1)
    for j in range(n_faces):
        expression = int(rng.integers(len(CLASS_SHARES)))
        p = dataclasses.replace(sample_face_params(rng, expression, face_px), roll=0.0, occluder=None)
        x, y = gap + j * (face_px + gap), int(rng.integers(20, height - face_px - 20))
        scene[y:y + face_px, x:x + face_px] = render_face(p, face_px)[0]
        placed.append((x, y, face_px, face_px, expression))
    return scene, placed


def make_clip(path: str | Path, seed: int = 0, n_faces: int = 2, segments: int = 3,
              seconds: float = 1.5, fps: int = 10, shape: tuple[int, int] = (240, 480),
              face_px: int = 160) -> list[tuple[int, float, float, str]]:
    """A short video (Motion-JPEG .avi) of demo faces whose expressions change, for the
    predictor's video timeline: each face keeps its identity, shows `segments` different
    expressions of `seconds` each and sways a few pixels, so a track has to follow it.

    Returns what was drawn: (face, start s, end s, expression name) per segment, faces numbered
    left to right.
    """
    rng = np.random.default_rng(seed)
    height, width = shape
    sway = 8
    if n_faces < 1 or n_faces * (face_px + 2 * sway + 10) + 10 > width or face_px + 20 > height:
        raise ConfigError(f"{n_faces} faces of {face_px} px do not fit a {width}x{height} video")
    if not 1 <= segments <= len(CLASS_SHARES) - 1 or seconds <= 0 or fps < 1:
        raise ConfigError(f"segments must be 1-{len(CLASS_SHARES) - 1} (each a different "
                          f"expression), seconds and fps positive, got {segments}, {seconds}, "
                          f"{fps}")
    background = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                                  (0, 0), 3)
    gap = (width - n_faces * face_px) // (n_faces + 1)
    per_segment = max(1, round(seconds * fps))
    drawn: list[tuple[int, float, float, str]] = []
    faces = []  # per face: its rendered segments and where it stands
    for j in range(n_faces):
        codes = rng.permutation(len(CLASS_SHARES) - 1)[:segments]  # no Contempt: rare
        base = sample_face_params(rng, int(codes[0]), face_px)
        base = replace(base, roll=0.0, occluder=None)
        crops = [render_face(replace(base, expression=int(c)), face_px)[0]
                 for c in codes]
        y = int(rng.integers(10, height - face_px - 10))
        faces.append((crops, gap + j * (face_px + gap), y, float(rng.uniform(0, 2 * math.pi))))
        for k, code in enumerate(codes):
            start = k * per_segment / fps
            drawn.append((j, round(start, 3), round(start + (per_segment - 1) / fps, 3),
                          EXPRESSIONS[int(code)]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise ConfigError(f"{path}: OpenCV cannot write a Motion-JPEG video here")
    try:
        for t in range(segments * per_segment):
            frame = background.copy()
            for crops, x, y, phase in faces:
                dx = round(sway * math.sin(2 * math.pi * t / (2 * fps) + phase))
                frame[y:y + face_px, x + dx:x + dx + face_px] = crops[t // per_segment]
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return sorted(drawn)
