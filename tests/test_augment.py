"""Augmentation moves landmarks with the face, is seeded, and only ever uses train images."""

from __future__ import annotations

import json
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from helpers.core.errors import ConfigError, DataError
from helpers.core.landmarks import LEFT_EYE_OUTER, RIGHT_EYE_OUTER, flip_landmarks
from helpers.core.records import load_records
from helpers.data import synthetic
from helpers.data.augment import (
    AugmentConfig,
    apply_params,
    augment,
    balanced_training_table,
    build_extras,
    describe_pipeline,
    flip_only_config,
    make_online_augmenter,
    materialize,
    plan_balance,
    resize_with_landmarks,
    sample_params,
)
from helpers.data.splits import LeakageError, check_no_leakage

SIZE = 32


# ---------------------------------------------------------------------------------------------
# fixtures


def random_landmarks(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    return rng.uniform(4, size - 5, (68, 2)).astype(np.float32)


def write_png(path: Path, image: np.ndarray) -> str:
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), pixels)
    return str(path)


@pytest.fixture
def records(tmp_path: Path) -> pd.DataFrame:
    """60 small PNGs in three splits, imbalanced classes, some gray, some without landmarks."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "src"
    folder.mkdir()
    counts = {0: 20, 1: 12, 2: 6, 7: 2}  # train rows per class
    rows = []
    for split, scale in (("train", 1), ("val", 0.5), ("test", 0.5)):
        for cls, n in counts.items():
            for k in range(max(1, int(n * scale))):
                rid = f"{split}/{cls}/{k}"
                gray = k % 5 == 4
                shape = (SIZE, SIZE) if gray else (SIZE, SIZE, 3)
                img = rng.integers(0, 256, shape, dtype=np.uint8)
                rows.append(
                    {
                        "id": rid,
                        "image": write_png(folder / f"{split}_{cls}_{k}.png", img),
                        "source": "demo",
                        "expression": cls,
                        "valence": float(rng.uniform(-1, 1)),
                        "arousal": float(rng.uniform(-1, 1)),
                        "landmarks": None if k % 3 == 2 else random_landmarks(rng),
                        "split": split,
                    }
                )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize(
    "field,value",
    [
        ("hflip_p", 1.5),
        ("hflip_p", -0.1),
        ("hflip_p", True),
        ("brightness_contrast_p", "0.5"),
        ("brightness_limit", 2.0),
        ("contrast_limit", -0.2),
        ("shift_limit", 0.8),
        ("scale_range", (1.2, 0.8)),
        ("scale_range", (0.0, 1.0)),
        ("scale_range", (1.0,)),
        ("rotate_limit", 400),
        ("affine_p", None),
        ("zoom_range", (1.0, "x")),
        ("zoom_p", 2),
        ("blur_p", -1),
        ("blur_limit", 4),
        ("blur_limit", 1),
        ("noise_p", 3),
        ("noise_std", (0.5, 0.1)),
        ("dropout_p", 1.1),
        ("dropout_max_holes", 0),
        ("dropout_size", (0.1, 1.5)),
        ("border_mode", "wrap"),
    ],
)
def test_bad_config_values_are_errors_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"AugmentConfig.{field} "):
        AugmentConfig(**{field: value})


def test_from_dict_accepts_notebook_parameters_and_rejects_unknown_keys():
    cfg = AugmentConfig.from_dict({"hflip_p": 1, "scale_range": [0.8, 1.2], "blur_p": 0.2})
    assert cfg.scale_range == (0.8, 1.2) and cfg.hflip_p == 1 and cfg.blur_p == 0.2
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg
    assert AugmentConfig.from_dict(None) == AugmentConfig()
    with pytest.raises(ConfigError, match="hflip_prob"):
        AugmentConfig.from_dict({"hflip_prob": 0.5})
    with pytest.raises(ConfigError, match="rotate_limit"):
        AugmentConfig.from_dict({"rotate_limit": -5})


def test_pipeline_description_leaves_out_disabled_steps():
    assert describe_pipeline(flip_only_config())["step"].tolist() == ["horizontal flip"]
    everything = AugmentConfig(blur_p=0.1, noise_p=0.1, dropout_p=0.1)
    assert len(describe_pipeline(everything)) == 7
    assert [type(t).__name__ for t in build_extras(everything).transforms] == [
        "GaussianBlur",
        "GaussNoise",
        "CoarseDropout",
    ]
    assert len(build_extras(AugmentConfig()).transforms) == 0


def test_switching_a_step_off_keeps_the_draws_of_the_others():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for seed in range(20):
        full = sample_params(AugmentConfig(), np.random.default_rng(seed), 32, 32)
        no_light = sample_params(
            AugmentConfig(brightness_contrast_p=0.0), np.random.default_rng(seed), 32, 32
        )
        np.testing.assert_array_equal(full.matrix, no_light.matrix)
        assert (no_light.alpha, no_light.beta) == (1.0, 0.0)
        with_noise = AugmentConfig(noise_p=1.0)
        same = sample_params(with_noise, np.random.default_rng(seed), 32, 32)
        np.testing.assert_array_equal(full.matrix, same.matrix)
        noisy, _ = apply_params(image, None, same, with_noise)
        assert not np.array_equal(noisy, apply_params(image, None, full, AugmentConfig())[0])


def test_all_geometric_steps_resample_once():
    """Flip + affine + zoom in one warp: a smooth ramp stays as sharp as one interpolation."""
    cfg = AugmentConfig(hflip_p=1.0, affine_p=1.0, zoom_p=1.0, brightness_contrast_p=0.0)
    ramp = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    params = sample_params(cfg, np.random.default_rng(3), 64, 64)
    assert params.flip and params.warped
    out, _ = apply_params(ramp, None, params, cfg)
    expected = cv2.warpAffine(
        ramp, params.matrix, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    np.testing.assert_array_equal(out, expected)


def test_brightness_contrast_follows_albumentations_formula():
    cfg = AugmentConfig(hflip_p=0.0, affine_p=0.0, zoom_p=0.0, brightness_contrast_p=1.0)
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    params = sample_params(cfg, np.random.default_rng(5), 16, 16)
    assert 0.8 <= params.alpha <= 1.2 and -51 <= params.beta <= 51
    out, _ = apply_params(image, None, params, cfg)
    expected = np.clip(np.rint(image * params.alpha + params.beta), 0, 255)
    np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------------------------------------
# landmarks follow the image


def test_flip_maps_landmarks_onto_the_mirrored_features():
    size = 96
    for seed in range(3):
        params = synthetic.sample_face_params(np.random.default_rng(seed), 1, size)
        image, lnd = synthetic.render_face(params, size)
        mirrored_image, mirrored_lnd = synthetic.render_face(synthetic.mirror_params(params), size)
        out_img, out_lnd = augment(image, lnd, flip_only_config(), seed=seed)

        np.testing.assert_array_equal(out_img, image[:, ::-1])
        np.testing.assert_allclose(out_lnd, mirrored_lnd, atol=1.0)
        np.testing.assert_allclose(out_lnd, flip_landmarks(lnd, size), atol=1e-4)
        # Point 36 (the subject's right eye, outer corner) sits on the mirrored face's right
        # eye outer corner, i.e. where the original left-eye outer corner (45) was mirrored to.
        np.testing.assert_allclose(
            out_lnd[RIGHT_EYE_OUTER], mirrored_lnd[RIGHT_EYE_OUTER], atol=1.0
        )
        assert abs(out_lnd[RIGHT_EYE_OUTER, 0] - (size - 1 - lnd[LEFT_EYE_OUTER, 0])) < 1e-3
        # In a frontal face the right eye is on the image's left both before and after.
        assert out_lnd[RIGHT_EYE_OUTER, 0] < out_lnd[LEFT_EYE_OUTER, 0]
        assert lnd[RIGHT_EYE_OUTER, 0] < lnd[LEFT_EYE_OUTER, 0]
        # Pixel level: the flipped image is the mirrored face, and the patch under point 36
        # of the augmented copy is the patch under point 36 of the mirrored render.
        assert np.abs(out_img.astype(int) - mirrored_image).mean() < 2
        x, y = np.round(out_lnd[RIGHT_EYE_OUTER]).astype(int)
        mx, my = np.round(mirrored_lnd[RIGHT_EYE_OUTER]).astype(int)
        patch = out_img[y - 3 : y + 4, x - 3 : x + 4].astype(int)
        assert np.abs(patch - mirrored_image[my - 3 : my + 4, mx - 3 : mx + 4]).mean() < 5


def dot_centroid(image: np.ndarray) -> np.ndarray | None:
    """Centre of a bright dot, or None when it touches the border (clipped)."""
    ys, xs = np.nonzero(image > 0)
    size = image.shape[0]
    if len(xs) == 0 or min(xs.min(), ys.min()) == 0 or max(xs.max(), ys.max()) == size - 1:
        return None
    w = image[ys, xs].astype(float)
    return np.array([(xs * w).sum(), (ys * w).sum()]) / w.sum()


def test_landmarks_move_with_the_pixels_under_flip_shift_scale_rotate_zoom():
    cfg = AugmentConfig(
        hflip_p=0.5,
        affine_p=1.0,
        zoom_p=1.0,
        rotate_limit=30,
        brightness_contrast_p=0.0,
        border_mode="constant",
    )
    size, checked = 64, 0
    rng = np.random.default_rng(1)
    for seed in range(40):
        x, y = rng.integers(16, 48, 2)
        image = np.zeros((size, size), np.uint8)
        cv2.circle(image, (int(x), int(y)), 2, 255, -1)
        lnd = np.full((68, 2), size / 2, np.float32)
        lnd[RIGHT_EYE_OUTER] = (x, y)
        out, moved = augment(image, lnd, cfg, seed)
        centre = dot_centroid(out)
        if centre is None:
            continue
        checked += 1
        # A flip renumbers the point to 45; otherwise it stays 36.
        err = min(
            np.abs(moved[RIGHT_EYE_OUTER] - centre).max(),
            np.abs(moved[LEFT_EYE_OUTER] - centre).max(),
        )
        assert err < 0.25
    assert checked >= 30


def test_resize_moves_landmarks_with_pixel_centres():
    image = np.zeros((40, 40), np.uint8)
    image[10:12, 20:22] = 255  # a 2x2 block centred on (20.5, 10.5)
    lnd = np.full((68, 2), 5.0, np.float32)
    lnd[0] = (20.5, 10.5)
    small, moved = resize_with_landmarks(image, lnd, 20)
    assert small.shape == (20, 20)
    np.testing.assert_allclose(moved[0], dot_centroid(small), atol=1e-3)
    assert resize_with_landmarks(image, None, 20)[1] is None


# ---------------------------------------------------------------------------------------------
# determinism and the online augmenter


def test_augment_is_deterministic_per_seed_and_handles_gray_and_missing_landmarks():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    lnd = random_landmarks(rng)
    cfg = AugmentConfig(blur_p=0.3, noise_p=0.3, dropout_p=0.3)
    a = augment(image, lnd, cfg, 11)
    augment(image, lnd, cfg, 12)
    b = augment(image, lnd, cfg, 11)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert any(not np.array_equal(a[0], augment(image, lnd, cfg, s)[0]) for s in range(13, 16))
    assert a[1].shape == (68, 2) and a[1].dtype == np.float32

    gray, none = augment(image[..., 0], None, cfg, 3)
    assert gray.shape == (SIZE, SIZE) and gray.dtype == np.uint8 and none is None


def test_online_augmenter_is_deterministic_per_seed_epoch_index_and_thread_safe():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (8, SIZE, SIZE, 3), dtype=np.uint8)
    lnds = np.stack([random_landmarks(rng) for _ in range(8)])
    lnds[5] = np.nan  # absent landmarks travel as NaN
    aug = make_online_augmenter(AugmentConfig(), seed=4)
    first = [aug(images[i], lnds[i], i, 0) for i in range(8)]
    again = [aug(images[i], lnds[i], i, 0) for i in range(8)]
    for (a, la), (b, lb) in zip(first, again, strict=False):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert np.isnan(first[5][1]).all() and first[5][1].shape == (68, 2)
    epoch1 = [aug(images[i], lnds[i], i, 1) for i in range(8)]
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, epoch1, strict=False))
    other = make_online_augmenter(AugmentConfig(), seed=5)
    assert any(
        not np.array_equal(first[i][0], other(images[i], lnds[i], i, 0)[0]) for i in range(8)
    )

    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda i: aug(images[i % 8], lnds[i % 8], i % 8, 0), range(64)))
    for i, (img, lnd) in enumerate(threaded):
        np.testing.assert_array_equal(img, first[i % 8][0])
        np.testing.assert_array_equal(lnd, first[i % 8][1])


# ---------------------------------------------------------------------------------------------
# balancing


def train_counts(records: pd.DataFrame) -> pd.Series:
    return records[records.split == "train"].groupby("expression").size()


def test_upsample_brings_every_class_to_the_target_from_its_own_train_images(records):
    with pytest.warns(UserWarning, match="train rows only"):
        plan = plan_balance(records, "upsample", seed=0)
    before = train_counts(records)
    assert plan.target_per_class == before.max() == 20
    summary = plan.summary()
    assert (summary["after"] == 20).all()
    assert summary.loc["Contempt", "generated"] == 18
    gen = plan.generate
    assert gen["id"].is_unique and not set(gen["id"]) & set(records["id"])
    source_class = records.set_index("id")["expression"]
    assert (gen["source_id"].map(source_class) == gen["expression"]).all()
    check_no_leakage(records, gen)
    # Copies are spread evenly over a class's images.
    uses = gen[gen.expression == 7]["source_id"].value_counts()
    assert uses.max() - uses.min() <= 1

    train = records[records.split == "train"]
    explicit = plan_balance(train, "upsample", target_per_class=30, seed=0)
    assert (explicit.summary()["after"] == 30).all()
    capped = plan_balance(train, "upsample", target_per_class=10)
    assert capped.summary().loc["Neutral", "after"] == 20  # never drops rows
    assert capped.summary().loc["Contempt", "after"] == 10


def test_upsampling_a_class_of_one_or_two_faces_is_said_once_among_the_notes():
    """Notebook 03 prints the plan's notes: the sentence is one of them, and no warning too."""
    labels = [1] * 30 + [4] * 2 + [5]
    train = pd.DataFrame({"id": [f"r{i}" for i in range(len(labels))], "source": "faces",
                          "expression": labels, "split": "train"})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = plan_balance(train, "upsample", target_per_class=30, seed=0)
    expected = (
        "upsampled from too few faces (Fear: 2 faces repeated 28 times, Disgust: 1 face repeated "
        "29 times, to 30 each): the model will memorise them rather than learn the class; add "
        "faces, or take them out of the data"
    )
    assert plan.notes.count(expected) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan_balance(train[train["expression"] != 5].assign(expression=1), "upsample")


def test_downsample_caps_classes_and_class_weights_balance(records):
    train = records[records.split == "train"]
    plan = plan_balance(train, "downsample", target_per_class=6, seed=1)
    after = plan.keep.groupby("expression").size()
    assert after.to_dict() == {0: 6, 1: 6, 2: 6, 7: 2}
    assert len(plan.generate) == 0
    assert set(plan.keep["id"]) <= set(train["id"])
    other = plan_balance(train, "downsample", target_per_class=6, seed=2)
    assert set(plan.keep["id"]) != set(other.keep["id"])
    assert plan_balance(train, "downsample").keep.groupby("expression").size().max() == 2

    weighted = plan_balance(train, "class_weights")
    counts = train_counts(records)
    totals = {c: weighted.class_weights[c] * n for c, n in counts.items()}
    assert np.allclose(list(totals.values()), len(train) / len(counts))
    assert len(weighted.keep) == len(train) and len(weighted.generate) == 0

    nothing = plan_balance(train, "none")
    assert len(nothing.keep) == len(train) and nothing.class_weights is None


def test_balance_refuses_val_test_rows_when_not_filtering_and_bad_arguments(records):
    with pytest.raises(LeakageError, match=r"val: .*test: "):
        plan_balance(records, "upsample", filter_train=False)
    with pytest.raises(ConfigError, match="strategy"):
        plan_balance(records, "smote")
    with pytest.raises(ConfigError, match="target_per_class"):
        plan_balance(records, "upsample", target_per_class=0)


def test_same_seed_same_plan_other_seed_differs(records):
    train = records[records.split == "train"]
    a = plan_balance(train, "upsample", seed=3).generate
    b = plan_balance(train, "upsample", seed=3).generate
    c = plan_balance(train, "upsample", seed=4).generate
    pd.testing.assert_frame_equal(a, b)
    assert not a["transform_seed"].equals(c["transform_seed"])


# ---------------------------------------------------------------------------------------------
# materialising augmented copies


def file_bytes(manifest: pd.DataFrame) -> list[bytes]:
    return [Path(p).read_bytes() for p in manifest["image"]]


def test_materialize_writes_train_only_copies_byte_identically(records, tmp_path):
    train = records[records.split == "train"]
    cfg = AugmentConfig()
    plan = plan_balance(train, "upsample", seed=0)
    first = materialize(plan, records, cfg, tmp_path / "a", progress=False, workers=3)
    second = materialize(plan, records, cfg, tmp_path / "b", progress=False, workers=1)

    # Zero val/test ids among augmented sources.
    assert len(first) == 8 + 14 + 18
    split_of = records.set_index("id")["split"]
    assert set(first["source_id"].map(split_of)) == {"train"}
    check_no_leakage(records, first)

    assert file_bytes(first) == file_bytes(second)
    assert not list((tmp_path / "a" / "images").glob("*.part"))
    reseeded = materialize(
        plan_balance(train, "upsample", seed=1), records, cfg, tmp_path / "c", progress=False
    )
    assert file_bytes(reseeded) != file_bytes(first)

    # Schema, copied labels, landmarks present exactly where the source had them.
    source = records.set_index("id")
    assert first["augmented"].all() and (first["split"] == "train").all()
    np.testing.assert_allclose(first["valence"], first["source_id"].map(source["valence"]))
    np.testing.assert_allclose(first["arousal"], first["source_id"].map(source["arousal"]))
    had = first["source_id"].map(source["landmarks"]).map(lambda v: v is not None)
    assert (first["landmarks"].map(lambda v: v is not None) == had).all()
    saved = load_records(tmp_path / "a" / "manifest.parquet")
    assert saved["id"].tolist() == first["id"].tolist()
    assert saved["transform_seed"].tolist() == first["transform_seed"].tolist()


def test_materialize_says_how_many_copies_it_writes_as_it_starts(records, tmp_path, monkeypatch):
    from helpers.core import progress

    lines = tmp_path / "lines"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(lines))
    plan = plan_balance(records[records.split == "train"], "upsample", seed=0)
    materialize(plan, records, flip_only_config(), tmp_path / "a", image_size=16)
    said = lines.read_text().splitlines()
    assert "writing 40 augmented copies ..." in said
    assert said.index("writing 40 augmented copies ...") == len(said) - 1  # before the copies


def test_materialize_flip_only_resized_moves_landmarks_and_keeps_channels(records, tmp_path):
    train = records[records.split == "train"]
    plan = plan_balance(train, "upsample", target_per_class=21, seed=0)
    manifest = materialize(
        plan, records, flip_only_config(), tmp_path, image_size=16, progress=False
    )
    source = records.set_index("id")
    for row in manifest.itertuples():
        src = source.loc[row.source_id]
        written = cv2.imread(row.image, cv2.IMREAD_UNCHANGED)
        original = cv2.imread(src.image, cv2.IMREAD_UNCHANGED)
        assert written.shape[:2] == (16, 16) and written.ndim == original.ndim
        if src.landmarks is not None:
            expected = flip_landmarks(resize_with_landmarks(original, src.landmarks, 16)[1], 16)
            np.testing.assert_allclose(row.landmarks, expected, atol=1e-4)


def test_materialize_refuses_a_plan_that_uses_val_or_test_images(records, tmp_path):
    plan = plan_balance(records[records.split == "train"], "upsample", seed=0)
    test_id = records.loc[records.split == "test", "id"].iloc[0]
    plan.generate.loc[0, "source_id"] = test_id
    with pytest.raises(LeakageError):
        materialize(plan, records, AugmentConfig(), tmp_path, progress=False)
    assert not (tmp_path / "images").exists() or not any((tmp_path / "images").iterdir())


def test_balanced_training_table_combines_kept_and_augmented(records, tmp_path):
    train = records[records.split == "train"]
    plan = plan_balance(train, "upsample", seed=0)
    manifest = materialize(plan, records, AugmentConfig(), tmp_path, progress=False)
    table = balanced_training_table(records, plan, manifest)
    assert (table.groupby("expression").size() == 20).all()
    assert (table["split"] == "train").all()
    assert table["augmented"].sum() == len(manifest) and (~table["augmented"]).sum() == len(train)
    assert table["id"].is_unique

    down = plan_balance(train, "downsample", target_per_class=6, seed=0)
    empty = materialize(down, records, AugmentConfig(), tmp_path / "down", progress=False)
    assert len(balanced_training_table(records, down, empty)) == 20

    tampered = manifest.copy()
    tampered.loc[0, "source_id"] = records.loc[records.split == "val", "id"].iloc[0]
    with pytest.raises(LeakageError):
        balanced_training_table(records, plan, tampered)


def test_planned_copies_point_at_train_sources_without_writing(records, tmp_path):
    """Online-only balancing: copies reference their own train source image; nothing is written."""
    from helpers.data.augment import planned_copies

    with pytest.warns(UserWarning, match="using train rows only, ignored val: 20, test: 20"):
        plan = plan_balance(records, strategy="upsample", seed=0)
    rows = planned_copies(plan, records)
    assert len(rows) == len(plan.generate) > 0
    by_id = records.set_index("id")
    assert (rows["image"].to_numpy() == by_id.loc[rows["source_id"], "image"].to_numpy()).all()
    assert set(by_id.loc[rows["source_id"], "split"]) == {"train"}
    table = balanced_training_table(records, plan, rows)
    assert table["expression"].value_counts().nunique() == 1


def test_augment_settings_round_trip_through_augment_json(tmp_path):
    from helpers.data.augment import AugmentSettings

    settings = AugmentSettings(
        mode="both",
        config=AugmentConfig(rotate_limit=5.0),
        balance="class_weights",
        target_per_class=None,
        class_weights={0: 0.5, 6: 2.0},
        seed=3,
    )
    path = settings.write(tmp_path / "augment.json")
    assert AugmentSettings.read(path) == settings and settings.online
    assert json.loads(path.read_text())["class_weights"] == {"0": 0.5, "6": 2.0}
    assert AugmentSettings.from_dict({"online": True}).mode == "online"  # a file without `mode`


@pytest.mark.parametrize(
    "field,value,problem",
    [
        ("mode", "sometimes", "mode must be one of offline, online, both, none"),
        ("config", {"rotate": 5}, "config: AugmentConfig: unknown field"),
        ("class_weights", {"happy": "x"}, "class_weights must map class ids to numbers"),
        ("seed", "0", "seed must be an integer"),
    ],
)
def test_a_wrong_augment_json_field_is_named_with_the_file(tmp_path, field, value, problem):
    from helpers.data.augment import AugmentSettings

    path = tmp_path / "augment.json"
    path.write_text(json.dumps({"mode": "online", field: value}))
    with pytest.raises(DataError, match=re.escape(f"{path}: {problem}")):
        AugmentSettings.read(path)


def test_augment_settings_refuse_an_unknown_mode_and_notebook_03_checks_it_first():
    import nbformat

    from helpers.core import paths
    from helpers.data.augment import AugmentSettings

    with pytest.raises(ConfigError, match="mode must be one of offline, online, both, none"):
        AugmentSettings(mode="sometimes")
    cells = [
        c.source
        for c in nbformat.read(paths.NOTEBOOKS_DIR / "03_augment.ipynb", as_version=4).cells
        if c.cell_type == "code"
    ]
    checked = next(i for i, code in enumerate(cells) if "aug.check_mode(augment_mode)" in code)
    first_work = next(i for i, code in enumerate(cells) if "image_hashes(" in code)
    assert checked < first_work  # run by hand, a bad mode is refused before any image is read
