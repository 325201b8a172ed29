"""Datasets of whole frames (JAFFE, CK+): labels from names and emotion files, each face found and
cropped once, frames without a face kept and counted, bad members named."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers.core.errors import ConfigError, DataError
from helpers.core.faces import centre_square, face_square, measure_framing
from helpers.core.images import close_archives
from helpers.core.labels import EXPRESSIONS, SYNONYMS
from helpers.core.trained import weights_sha256
from helpers.data.datasets import detect_source, read_source
from helpers.data.datasets.ckplus import read_ckplus
from helpers.data.datasets.frames import NO_FACE
from helpers.data.datasets.jaffe import read_jaffe
from helpers.data.synthetic import render_face, sample_face_params

FACE_PX = 160
FOUND = (0, 2, 3)  # demo faces the Haar cascade finds at 160 px (see test_predict)
JAFFE_CODES = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")


@pytest.fixture(autouse=True)
def _closed_archives():
    yield
    close_archives()


def _frame(seed: int | None, shape: tuple[int, int], at: tuple[int, int], gray: bool) -> np.ndarray:
    """A blurred-noise frame with an upright demo face pasted at (x, y); None: no face."""
    rng = np.random.default_rng(1000 + (seed or 0))
    frame = cv2.GaussianBlur(rng.integers(0, 256, (*shape, 3), dtype=np.uint8), (0, 0), 3)
    if seed is not None:
        face_rng = np.random.default_rng(seed)
        p = sample_face_params(face_rng, int(face_rng.integers(len(EXPRESSIONS))), FACE_PX)
        x, y = at
        frame[y : y + FACE_PX, x : x + FACE_PX] = render_face(
            replace(p, roll=0.0, occluder=None), FACE_PX
        )[0]
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if gray else frame


def _save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def jaffe_folder(root: Path) -> Path:
    """Seven frames named like JAFFE's (one per code, the last without a face) and the members
    a reader must refuse by name."""
    for i, code in enumerate(JAFFE_CODES):
        seed = FOUND[i % len(FOUND)] if code != "SU" else None
        _save(
            root / "jaffe" / f"KA.{code}{i % 3 + 1}.{30 + i}.tiff",
            _frame(seed, (256, 256), (48, 56), gray=True),
        )
    (root / "jaffe" / "KM.HA2.99.tiff").write_bytes(b"not a tiff at all")
    _save(root / "jaffe" / "KM.XX1.7.tiff", _frame(0, (256, 256), (48, 56), gray=True))
    _save(root / "jaffe" / "portrait.png", _frame(0, (256, 256), (48, 56), gray=True))
    (root / "jaffe" / "README").write_text("The JAFFE images")
    return root


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return target


def test_jaffe_labels_from_names_faces_cropped_and_refusals_named(tmp_path):
    root = jaffe_folder(tmp_path / "src")
    assert detect_source(root) == "jaffe"
    result = read_jaffe(root, cache_dir=tmp_path / "cache", progress=False)
    df = result.records.set_index("id")
    assert sorted(df.index) == sorted(
        f"KA.{code}{i % 3 + 1}.{30 + i}" for i, code in enumerate(JAFFE_CODES)
    )
    expected = {"AN": "Anger", "DI": "Disgust", "FE": "Fear", "HA": "Happy"}
    expected |= {"NE": "Neutral", "SA": "Sad", "SU": "Surprise"}
    for ident, row in df.iterrows():
        assert EXPRESSIONS[row["expression"]] == expected[ident.split(".")[1][:2]], ident
    assert df["split"].isna().all() and (df["source"] == "jaffe").all()
    assert (df["subject"] == "KA").all()  # the person, so splits keep their faces together
    assert result.dropped == {
        "unreadable image": 1,
        "unknown expression code XX": 1,
        "not a JAFFE file name (like KA.AN1.39.tiff)": 1,
        "not an image extension": 1,
    }
    assert result.examples["unreadable image"] == ["jaffe/KM.HA2.99.tiff"]
    # The faceless frame is kept whole (its centre square) and counted by name.
    assert result.repaired == {NO_FACE: 1}
    assert result.examples[NO_FACE] == ["jaffe/KA.SU1.36.tiff"]
    assert "repaired 1 x no face found" in str(result)
    # Each face crop is the detector's square around the pasted face, cut from the frame.
    for ident, row in df.iterrows():
        crop = np.asarray(Image.open(row["image"]))
        frame = np.asarray(Image.open(root / "jaffe" / f"{ident}.tiff"))
        box = face_square(frame) or centre_square(256, 256)
        left, top, right, bottom = box
        assert np.array_equal(crop, frame[top:bottom, left:right]), ident
        if not ident.startswith("KA.SU"):
            assert 48 <= (left + right) / 2 <= 48 + FACE_PX and right - left < 256, ident
    # Read again: the cached crops, the same records and the same account.
    again = read_jaffe(root, cache_dir=tmp_path / "cache", progress=False)
    assert again.records.equals(result.records) and again.repaired == result.repaired


def test_faces_found_in_threads_are_the_faces_found_in_one(tmp_path):
    """Each worker thread has its own cascade: a shared one returns wrong boxes."""
    root = jaffe_folder(tmp_path / "src")
    crops = [
        [
            np.asarray(Image.open(p))
            for p in read_jaffe(
                root, cache_dir=tmp_path / f"cache{n}", workers=n, progress=False
            ).records["image"]
        ]
        for n in (1, 4)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(*crops, strict=True))


def test_jaffe_from_a_zip_and_through_read_source(tmp_path):
    archive = _zip(jaffe_folder(tmp_path / "src"), tmp_path / "jaffe.zip")
    assert detect_source(archive) == "jaffe"
    result = read_source(archive, cache_dir=tmp_path / "cache", progress=False)
    assert result.reader == "jaffe" and len(result.records) == 7
    assert all(Path(p).is_file() for p in result.records["image"])  # crops, not zip members


def test_a_class_folder_tree_is_not_taken_for_jaffe(tmp_path):
    for name in ("happy", "sad"):
        _save(tmp_path / "tree" / name / "a.png", _frame(None, (48, 48), (0, 0), gray=True))
    assert detect_source(tmp_path / "tree") == "folders"


def ck_folder(root: Path) -> Path:
    """Three labelled sequences (disgust, contempt, and one whose peak has no face), one with a
    damaged label, one whose labelled frame is missing, one without a label, and the landmark
    files the release ships beside the images."""
    images, emotion = root / "cohn-kanade-images", root / "Emotion"
    sequences = {
        ("S005", "001"): (3, "3.0000000e+00", 0),
        ("S010", "002"): (2, "2.0", 2),
        ("S011", "004"): (2, "   7.0000000e+00\n", None),
        ("S022", "001"): (2, "x", 3),
        ("S026", "003"): (9, "5.0", 0),
        ("S032", "001"): (2, None, 0),
    }
    for (subject, seq), (peak, label, seed) in sequences.items():
        for n in range(1, 3 + (peak == 3)):
            name = f"{subject}_{seq}_{n:08d}"
            _save(
                images / subject / seq / f"{name}.png",
                _frame(seed, (490, 640), (240, 150), gray=subject != "S010"),
            )
            (root / "Landmarks" / subject / seq).mkdir(parents=True, exist_ok=True)
            (root / "Landmarks" / subject / seq / f"{name}_landmarks.txt").write_text("1 2\n")
        if label is not None:
            target = emotion / subject / seq / f"{subject}_{seq}_{peak:08d}_emotion.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(label)
    (images / "S005" / "001" / "notes.doc").write_text("?")
    return root


def test_ckplus_peak_frames_labelled_and_cropped(tmp_path):
    root = ck_folder(tmp_path / "CK+")
    assert detect_source(root) == "ckplus"
    result = read_ckplus(root, cache_dir=tmp_path / "cache", progress=False)
    df = result.records.set_index("id")
    assert df["expression"].to_dict() == {
        "S005_001_00000003": SYNONYMS["disgust"],
        "S010_002_00000002": SYNONYMS["contempt"],
        "S011_004_00000002": SYNONYMS["surprise"],
    }
    assert result.dropped == {
        "unreadable emotion file (one code, 0-7)": 1,
        "labelled frame missing": 1,
        "not a CK+ frame or emotion file": 1,
    }
    assert df["subject"].to_dict() == {i: i[:4] for i in df.index}  # S005_001_... -> S005
    assert result.examples["labelled frame missing"] == [
        "Emotion/S026/003/S026_003_00000009_emotion.txt"
    ]
    assert result.repaired == {NO_FACE: 1}
    assert result.examples[NO_FACE] == ["cohn-kanade-images/S011/004/S011_004_00000002.png"]
    crop = np.asarray(Image.open(df.loc["S010_002_00000002", "image"]))
    assert crop.ndim == 3 and crop.shape[0] == crop.shape[1] < 490  # colour frame, face square
    faceless = np.asarray(Image.open(df.loc["S011_004_00000002", "image"]))
    assert faceless.shape == (490, 490)  # the centre square of a 640x490 frame

    with_neutral = read_ckplus(
        root, first_frame_neutral=True, cache_dir=tmp_path / "cache", progress=False
    ).records.set_index("id")
    assert len(with_neutral) == 6
    assert with_neutral.loc["S005_001_00000001", "expression"] == SYNONYMS["neutral"]


def test_ckplus_from_a_zip_and_its_errors(tmp_path):
    archive = _zip(ck_folder(tmp_path / "CK+"), tmp_path / "ck.zip")
    result = read_source(archive, cache_dir=tmp_path / "cache", progress=False)
    assert result.reader == "ckplus" and len(result.records) == 3
    labels_only = tmp_path / "labels"
    target = labels_only / "Emotion" / "S005" / "001" / "S005_001_00000003_emotion.txt"
    target.parent.mkdir(parents=True)
    target.write_text("3.0")
    _save(
        labels_only / "cohn-kanade-images" / "S005" / "002" / "S005_002_00000001.png",
        _frame(None, (49, 64), (0, 0), gray=True),
    )
    with pytest.raises(DataError, match=r"no usable labelled CK\+ frames.*labelled frame missing"):
        read_ckplus(labels_only, cache_dir=tmp_path / "cache", progress=False)
    with pytest.raises(DataError, match="not found"):
        read_ckplus(tmp_path / "nowhere")


def test_a_model_is_scored_on_jaffe_faces(tmp_path, monkeypatch):
    """The cross-dataset path notebook 05 takes with test_data: JAFFE read, faces cropped
    into the data cache, contempt (absent from JAFFE) left out and said so in the metrics."""
    from helpers.core import paths
    from helpers.evaluation.scoring import evaluate_external
    from helpers.models.factory import build_model

    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")

    archive = _zip(jaffe_folder(tmp_path / "src"), tmp_path / "jaffe.zip")
    model = build_model(
        "custom_cnn", image_size=48, channels=1, heads=("expression",), weights=None, seed=0
    )
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)  # its card: trained on faces framed at margin 0.05
    (run / "models" / "custom_cnn.json").write_text(json.dumps({"face_framing": {"margin": 0.05}}))
    scores, preds = evaluate_external(model, "custom_cnn", archive, run, n_boot=20, batch_size=8)
    assert len(preds) == 7
    written = json.loads((run / "metrics" / "custom_cnn.jaffe.json").read_text())
    assert written["expression"]["accuracy"] == pytest.approx(scores["expression"]["accuracy"])
    assert written["notes"] == [
        "the test set has no Contempt: predictions are the argmax over the 7 shared classes, "
        "probabilities renormalised over them",
        "the test faces are all of one person: the intervals are over that person's images and "
        "say nothing of other people",  # the fixture's frames are all of KA
    ]  # once each
    crops = {p.name.split(".face")[0]: p for p in (tmp_path / "data" / "cache").glob("jaffe-*/*")}
    assert len(crops) == 7
    frame = np.asarray(Image.open(tmp_path / "src" / "jaffe" / "KA.AN1.30.tiff"))
    left, top, right, bottom = face_square(frame, margin=0.05)
    assert np.array_equal(np.asarray(Image.open(crops["KA.AN1.30"])), frame[top:bottom, left:right])


def test_the_framing_of_stored_faces_is_measured():
    """Demo faces are stored with brow-to-chin at about 1.4 of the side (margin 0.2); cut to
    about the Haar box, as FER-2013's are, the margin that reproduces them is near 0."""
    rng = np.random.default_rng(0)
    demo = [render_face(sample_face_params(rng, i % 8, 96), 96)[0] for i in range(48)]
    framing = measure_framing(demo)
    assert framing is not None and 0.12 <= framing.margin <= 0.28
    assert framing.found >= 20 and framing.sampled == 48
    tight = measure_framing([face[14:82, 14:82] for face in demo])
    assert tight is not None and tight.margin <= 0.07
    assert measure_framing(demo[:5]) is None  # too few faces to say


def test_frames_are_cropped_with_the_margin_asked_for(tmp_path):
    root = jaffe_folder(tmp_path / "src")
    tight = read_source(root, face_margin=0.0, cache_dir=tmp_path / "cache", progress=False)
    loose = read_source(root, cache_dir=tmp_path / "cache", progress=False)
    frame = np.asarray(Image.open(root / "jaffe" / "KA.AN1.30.tiff"))
    left, top, right, bottom = face_square(frame, margin=0.0)
    crop = np.asarray(Image.open(tight.records.set_index("id").loc["KA.AN1.30", "image"]))
    assert np.array_equal(crop, frame[top:bottom, left:right])
    side = np.asarray(Image.open(loose.records.set_index("id").loc["KA.AN1.30", "image"])).shape
    assert side[0] > crop.shape[0] * 1.3


def test_fer2013_csv_as_a_test_set_is_scored_on_its_privatetest_half(tmp_path, monkeypatch):
    """`--test-data fer2013.csv`: the other FER-2013 half (PrivateTest), not its training faces."""
    from helpers.core import paths
    from helpers.evaluation.scoring import evaluate_external
    from helpers.models.factory import build_model

    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    rng = np.random.default_rng(0)
    usages = ["Training"] * 6 + ["PublicTest"] * 3 + ["PrivateTest"] * 4
    lines = ["emotion,pixels,Usage"] + [
        f"{i % 7},{' '.join(map(str, rng.integers(0, 256, 48 * 48)))},{use}"
        for i, use in enumerate(usages)
    ]
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    model = build_model(
        "custom_cnn", image_size=48, channels=1, heads=("expression",), weights=None, seed=0
    )
    (tmp_path / "run" / "models").mkdir(parents=True)  # the model file the metrics name
    (tmp_path / "run" / "models" / "custom_cnn.keras").write_bytes(b"weights")
    scores, preds = evaluate_external(
        model, "custom_cnn", tmp_path / "fer2013.csv", tmp_path / "run", n_boot=10
    )
    assert len(preds) == 4 and scores["n"] == 4
    written = json.loads((tmp_path / "run" / "metrics" / "custom_cnn.fer2013.json").read_text())
    assert written["trained"] == {
        "model_sha256": hashlib.sha256(b"weights").hexdigest(),
        "card_finished_at": None,
        "weights_sha256": weights_sha256(model.get_weights()),  # the weights it scored
    }
    assert scores["notes"][0] == (
        "scored on the source's test split: 4 of its 13 records "
        "(its train and validation splits left out)"
    )


@pytest.mark.parametrize("margin", [-0.6, float("nan"), float("inf"), "0.3", 2.5, True])
def test_a_bad_face_margin_is_refused_before_reading(tmp_path, margin):
    root = jaffe_folder(tmp_path / "src")
    cache = tmp_path / "cache"
    with pytest.raises(ConfigError, match=r"face_margin must be a finite number in \[0, 2\]"):
        read_source(root, face_margin=margin, cache_dir=cache, progress=False)
    with pytest.raises(ConfigError, match=r"margin must be .* for the 'jaffe' reader"):
        read_jaffe(root, margin=margin, cache_dir=cache, progress=False)
    with pytest.raises(ConfigError, match=r"margin must be .* for the 'ckplus' reader"):
        read_ckplus(root, margin=margin, cache_dir=cache, progress=False)
    assert not cache.exists()
