"""The demo dataset generator: layout, determinism, label shares, drawing and the CLI."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers.core.errors import ConfigError
from helpers.core.labels import EXPRESSIONS
from helpers.core.landmarks import flip_landmarks
from helpers.data import synthetic as syn

N = 80
SIZE = 64
INVALID, MISSING = 0.05, 0.025  # 4 and 2 of 80


def _clean(p: syn.FaceParams) -> syn.FaceParams:
    """The same face without the photographic nuisances, so colours can be checked exactly."""
    return dataclasses.replace(
        p,
        light_strength=0.0,
        brightness=1.0,
        blur_sigma=0.0,
        noise_sigma=0.0,
        occluder=None,
        gaze=0.0,
    )


def _gray(rgb) -> float:
    return float(np.dot(np.asarray(rgb, dtype=np.float64), (0.299, 0.587, 0.114)))


def _pixel(img: np.ndarray, xy: np.ndarray) -> np.ndarray:
    x, y = np.rint(xy).astype(int)
    return img[y, x].astype(np.float64)


def _faces(seed: int, per_class: int, size: int = 224) -> list[syn.FaceParams]:
    rng = np.random.default_rng(seed)
    return [syn.sample_face_params(rng, e, size) for e in range(8) for _ in range(per_class)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("demo") / "demo.zip"
    summary = syn.generate_zip(
        out,
        n=N,
        seed=3,
        size=SIZE,
        invalid_exp_share=INVALID,
        missing_exp_share=MISSING,
        progress=False,
    )
    return out, summary


def _annotations(path: Path) -> dict[str, dict[str, np.ndarray]]:
    """id -> kind -> array, read the way the pipeline reads them."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.startswith(syn.ANNOTATIONS_DIR) and name.endswith(".npy"):
                stem = name[len(syn.ANNOTATIONS_DIR) : -4]
                rid, kind = stem.rsplit("_", 1)
                out.setdefault(rid, {})[kind] = np.load(
                    io.BytesIO(zf.read(name)), allow_pickle=False
                )
    return out


# ---- the zip ------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    kw = {"n": 24, "size": 48, "progress": False}
    a, b, c = tmp_path / "a.zip", tmp_path / "b.zip", tmp_path / "c.zip"
    syn.generate_zip(a, seed=5, **kw)
    syn.generate_zip(b, seed=5, **kw)
    syn.generate_zip(c, seed=6, **kw)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_member_names_follow_the_affectnet_layout(demo):
    path, _ = demo
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        infos = zf.infolist()
    files = [n for n in names if not n.endswith("/")]
    assert len(set(names)) == len(names)
    ids = [n[len(syn.IMAGES_DIR) : -4] for n in files if n.startswith(syn.IMAGES_DIR)]
    assert sorted(ids, key=int) == [str(i) for i in range(N)]
    no_exp = {rid for rid, kinds in _annotations(path).items() if "exp" not in kinds}
    expected = {f"{syn.IMAGES_DIR}{i}.jpg" for i in ids}
    expected |= {
        f"{syn.ANNOTATIONS_DIR}{i}_{k}.npy"
        for i in ids
        for k in syn.ANNOTATION_KINDS
        if not (k == "exp" and i in no_exp)
    }
    assert set(files) == expected
    assert all(n.startswith(syn.ROOT) or n == "Dataset/" for n in names)
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        want = zipfile.ZIP_DEFLATED if info.filename.endswith(".npy") else zipfile.ZIP_STORED
        assert info.compress_type == want


def test_annotations_have_affectnet_dtypes_and_shapes(demo):
    path, _ = demo
    ann = _annotations(path)
    assert len(ann) == N
    for kinds in ann.values():
        for k in ("exp", "val", "aro"):
            if k in kinds:
                a = kinds[k]
                assert a.shape == () and a.dtype.kind == "U"
                float(str(a))  # parses as a number
        lnd = kinds["lnd"]
        assert lnd.shape == (136,) and lnd.dtype == np.float64
        assert np.all((lnd >= 0) & (lnd <= SIZE - 1))
        assert -1.0 <= float(str(kinds["val"])) <= 1.0
        assert -1.0 <= float(str(kinds["aro"])) <= 1.0


def test_images_decode_to_the_requested_size(demo):
    path, _ = demo
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.endswith(".jpg"):
                img = cv2.imdecode(np.frombuffer(zf.read(name), np.uint8), cv2.IMREAD_COLOR)
                assert img is not None and img.shape == (SIZE, SIZE, 3)


def test_invalid_and_missing_exp_records_come_in_the_asked_shares(demo):
    path, summary = demo
    ann = _annotations(path)
    exps = [str(k["exp"]) for k in ann.values() if "exp" in k]
    invalid = [e for e in exps if e not in {str(i) for i in range(8)}]
    assert summary["invalid_exp"] == len(invalid) == round(N * INVALID)
    assert set(invalid) <= set(syn.INVALID_EXP_CODES)
    assert summary["missing_exp"] == N - len(exps) == round(N * MISSING)
    assert summary["valid"] == N - len(invalid) - summary["missing_exp"]


def test_valid_labels_follow_the_class_counts_and_ids_hide_the_class(demo):
    path, summary = demo
    ann = _annotations(path)
    labels = {
        int(rid): int(str(k["exp"]))
        for rid, k in ann.items()
        if "exp" in k and str(k["exp"]) not in syn.INVALID_EXP_CODES
    }
    counts = np.bincount(list(labels.values()), minlength=8)
    assert dict(zip(EXPRESSIONS, counts.tolist(), strict=False)) == summary["counts"]
    assert counts.tolist() == syn.class_counts(summary["valid"]).tolist()
    assert counts.min() >= 1
    by_id = [labels[i] for i in sorted(labels)]
    assert by_id != sorted(by_id)


def test_class_counts_are_exact_largest_remainder_counts():
    assert syn.class_counts(4000).tolist() == [880, 1200, 400, 320, 280, 200, 520, 200]
    assert syn.class_counts(80, balanced=True).tolist() == [10] * 8
    for n in range(1, 120):
        c = syn.class_counts(n)
        assert c.sum() == n and c.min() >= (1 if n >= 8 else 0)
    assert syn.class_counts(50).tolist() == syn.class_counts(50).tolist()


def test_zero_shares_leave_every_record_valid(tmp_path):
    s = syn.generate_zip(
        tmp_path / "v.zip",
        n=16,
        size=48,
        progress=False,
        invalid_exp_share=0,
        missing_exp_share=0,
        balanced=True,
    )
    assert s["valid"] == 16 and s["invalid_exp"] == s["missing_exp"] == 0
    assert set(s["counts"].values()) == {2}


def test_bad_arguments_fail_clearly_and_write_nothing(tmp_path):
    out = tmp_path / "x.zip"
    with pytest.raises(ConfigError, match="n must be"):
        syn.generate_zip(out, n=0, progress=False)
    with pytest.raises(ConfigError, match="invalid_exp_share"):
        syn.generate_zip(out, n=10, invalid_exp_share=1.5, progress=False)
    with pytest.raises(ConfigError, match="size"):
        syn.generate_zip(out, n=10, size=8, progress=False)
    with pytest.raises(ConfigError, match="expression"):
        syn.sample_face_params(np.random.default_rng(0), 8)
    assert list(tmp_path.iterdir()) == []


# ---- faces ---------------------------------------------------------------------------------


def test_sampling_is_deterministic_given_the_generator():
    a = syn.sample_face_params(np.random.default_rng(11), 3)
    b = syn.sample_face_params(np.random.default_rng(11), 3)
    assert a == b
    assert np.array_equal(syn.render_face(a, 96)[0], syn.render_face(b, 96)[0])
    assert a != syn.sample_face_params(np.random.default_rng(12), 3)


@pytest.mark.parametrize("size", [48, 224])
def test_landmarks_stay_inside_the_image(size):
    for p in _faces(0, 25, size):
        lnd = syn.face_landmarks(p, size)
        assert lnd.shape == (68, 2) and lnd.dtype == np.float32
        assert lnd.min() >= 0 and lnd.max() <= size - 1


def test_render_returns_rgb_image_and_the_same_landmarks():
    p = _faces(1, 1)[4]
    for size in (48, 224):
        img, lnd = syn.render_face(p, size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(lnd, syn.face_landmarks(p, size))


def test_drawn_features_sit_on_their_landmarks():
    for p in map(_clean, _faces(2, 2)):
        img, lnd = syn.render_face(p, 224)
        skin = np.array(p.skin, dtype=np.float64)
        # the jaw encloses skin: cheeks between nose and jaw line, chin below the lip
        for a, b, f in (
            (29, 1, 0.8),
            (29, 2, 0.8),
            (30, 3, 0.8),
            (30, 13, 0.8),
            (29, 14, 0.8),
            (29, 15, 0.8),
            (57, 8, 0.5),
        ):
            inside = lnd[a] + f * (lnd[b] - lnd[a])
            assert np.abs(_pixel(img, inside) - skin).max() <= 10, (p.expression, b)
        # dark lid lines run through the eye landmarks; the pupil sits between the corners
        eyes = [_gray(_pixel(img, q)) for q in lnd[36:48]]
        assert np.mean(eyes) < 0.6 * _gray(skin) + 5
        for a, b in ((36, 39), (42, 45)):
            assert _gray(_pixel(img, (lnd[a] + lnd[b]) / 2)) < 45
        # the lips' outline runs through the mouth landmarks and is not skin
        lips = np.array([_pixel(img, q) for q in lnd[48:60]])
        assert np.abs(lips - skin).max(axis=1).mean() > 20
        # nostrils are darker than the skin around them
        assert _gray(_pixel(img, lnd[33])) < _gray(skin) - 10


def test_mirrored_params_give_flipped_landmarks_and_a_mirrored_image():
    for p in _faces(3, 2):
        q = syn.mirror_params(p)
        assert syn.mirror_params(q) == p
        for size in (64, 224):
            np.testing.assert_allclose(
                syn.face_landmarks(q, size),
                flip_landmarks(syn.face_landmarks(p, size), size),
                atol=1e-3,
            )
    p = _faces(4, 1)[7]  # contempt: the one-sided cue must move sides too
    a, _ = syn.render_face(p, 128)
    b, _ = syn.render_face(syn.mirror_params(p), 128)
    assert np.abs(a[:, ::-1].astype(int) - b).mean() < 2.0


def _geometry(p: syn.FaceParams, expression: int) -> dict[str, float]:
    """Expression-relevant measurements of an upright face, in face-frame units (y down)."""
    c = syn.face_landmarks(
        dataclasses.replace(p, expression=expression, intensity=1.0, roll=0.0), 1000
    ).astype(np.float64)
    iod = np.linalg.norm(c[45] - c[36])
    mid = (c[51, 1] + c[57, 1]) / 2
    return {
        "corner_l": (mid - c[48, 1]) / iod,
        "corner_r": (mid - c[54, 1]) / iod,
        "eye_open": (c[41, 1] - c[37, 1] + c[46, 1] - c[44, 1]) / iod,
        "brow": (c[36:48, 1].mean() - c[17:27, 1].mean()) / iod,
        "brow_gap": (c[22, 0] - c[21, 0]) / iod,
        "inner_brow_up": (c[[19, 24], 1].mean() - c[[21, 22], 1].mean()) / iod,
        "mouth_open": (c[66, 1] - c[62, 1]) / iod,
        "mouth_width": (c[54, 0] - c[48, 0]) / iod,
        "lip_to_nose": (c[51, 1] - c[33, 1]) / iod,
        "lip_thickness": (c[57, 1] - c[51, 1]) / iod,
    }


def test_expression_prototypes_move_the_facs_cues():
    p = dataclasses.replace(_faces(5, 1)[0], jitter=(0.0,) * 136, contempt_side=1)
    g = {e: _geometry(p, e) for e in range(8)}
    n = g[0]
    assert g[1]["corner_l"] > n["corner_l"] + 0.05
    assert g[1]["corner_r"] > n["corner_r"] + 0.05
    assert g[1]["mouth_open"] > n["mouth_open"]  # happy: open smile
    assert g[2]["corner_l"] < n["corner_l"] - 0.05  # sad: frown and
    assert g[2]["inner_brow_up"] > n["inner_brow_up"] + 0.1  # inner brows up
    assert g[3]["brow"] > n["brow"] + 0.05 and g[3]["eye_open"] > n["eye_open"] * 1.3
    assert g[3]["mouth_open"] > 0.2 > n["mouth_open"]
    assert g[4]["eye_open"] > n["eye_open"] * 1.3 and g[4]["brow_gap"] < n["brow_gap"]
    assert g[4]["mouth_width"] > n["mouth_width"] + 0.1 and g[4]["mouth_open"] > 0.05
    assert g[5]["lip_to_nose"] < n["lip_to_nose"] - 0.05 and g[5]["brow"] < n["brow"]
    assert g[6]["brow"] < n["brow"] and g[6]["brow_gap"] < n["brow_gap"]
    assert g[6]["inner_brow_up"] < n["inner_brow_up"]  # anger: brows in a V
    assert g[6]["eye_open"] < n["eye_open"] and g[6]["lip_thickness"] < n["lip_thickness"] / 2
    assert g[7]["corner_r"] > n["corner_r"] + 0.05  # one corner only
    assert g[7]["corner_l"] == pytest.approx(n["corner_l"], abs=1e-6)


def test_valence_arousal_follow_the_circumplex():
    rng = np.random.default_rng(9)
    for e, (cv, ca) in enumerate(syn.CIRCUMPLEX):
        va = np.array([syn.valence_arousal(syn.sample_face_params(rng, e), rng) for _ in range(60)])
        assert np.all(np.abs(va) <= 1.0)
        mv, ma = va.mean(axis=0)
        for mean, centre in ((mv, cv), (ma, ca)):
            if centre == 0:
                assert abs(mean) < 0.05
            else:
                assert np.sign(mean) == np.sign(centre) and abs(mean) < abs(centre)


# ---- CLI -----------------------------------------------------------------------------------


def test_cli_writes_then_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "sub" / "demo.zip"
    args = ["--out", str(out), "--n", "12", "--size", "48", "--seed", "2", "--quiet"]
    assert syn.main(args) == 0
    line = capsys.readouterr().out.strip()
    assert str(out) in line and "12 images" in line and "\n" not in line
    before = out.read_bytes()
    assert zipfile.ZipFile(out).testzip() is None

    assert syn.main([*args[:-3], "--seed", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--force" in err and "force=True" not in err  # the command's flag, not Python's
    assert out.read_bytes() == before

    assert syn.main([*args[:-3], "--seed", "3", "--quiet", "--force"]) == 0
    assert out.read_bytes() != before
    assert [f.name for f in out.parent.iterdir()] == ["demo.zip"]  # no temp file left


# ---- the demo set of a profile, written once -----------------------------------------------


@pytest.fixture
def small_demo(tmp_path, monkeypatch):
    """The smoke profile's demo zip at 12 faces of 48 px, cached under tmp_path; its path."""
    from helpers.core import paths
    from helpers.run import profiles

    small = dataclasses.replace(profiles.get_profile("smoke"), demo_n=12, demo_size=48)
    monkeypatch.setattr(paths, "DEMO_DIR", tmp_path / "demo")
    monkeypatch.setattr(profiles, "get_profile", lambda name: small)
    return profiles.demo_zip_path("smoke", 0)


def _lands_while_writing(monkeypatch, target: Path, content: bytes) -> None:
    """Another process renames its finished zip into place while this one draws its faces."""
    draw = syn.render_face

    def render(*args, **kwargs):
        if not target.exists():
            target.write_bytes(content)
        return draw(*args, **kwargs)

    monkeypatch.setattr(syn, "render_face", render)


def test_a_demo_zip_another_run_finishes_meanwhile_is_checked_and_reused(
    small_demo, tmp_path, monkeypatch
):
    from helpers.run import profiles

    other = tmp_path / "other.zip"
    syn.generate_zip(other, n=12, seed=0, size=48, progress=False)
    _lands_while_writing(monkeypatch, small_demo, other.read_bytes())
    assert profiles.ensure_demo_zip("smoke", 0, progress=False) == small_demo
    assert small_demo.read_bytes() == other.read_bytes()
    assert list(small_demo.parent.iterdir()) == [small_demo]  # no temporary file left


def test_a_damaged_demo_zip_that_appears_meanwhile_is_named_with_what_to_do(
    small_demo, monkeypatch
):
    from helpers.core.errors import DataError
    from helpers.run import profiles

    _lands_while_writing(monkeypatch, small_demo, b"PK\x03\x04 cut short")
    with pytest.raises(DataError) as raised:
        profiles.ensure_demo_zip("smoke", 0, progress=False)
    message = str(raised.value)
    assert message.startswith(f"{small_demo}: ") and "delete it and run again" in message
    assert "force" not in message
    assert list(small_demo.parent.iterdir()) == [small_demo]
