"""The tf.data input pipeline: shapes, missing targets, landmarks, channels, determinism, zips."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from PIL import Image

from helpers.core.errors import ConfigError, DataError
from helpers.core.images import close_archives, make_uri
from helpers.data.augment import AugmentConfig, flip_only_config, make_online_augmenter
from helpers.train import pipeline
from helpers.train.pipeline import EpochClock, describe, make_dataset, steps_per_epoch

N = 10


def _write(path: Path, image: np.ndarray) -> str:
    """PNG via PIL (RGB or L), returning the path as the table's image URI."""
    Image.fromarray(image).save(path)
    return str(path)


def _table(
    tmp_path: Path, n: int = N, size: tuple[int, int] = (40, 40), gray: bool = False
) -> pd.DataFrame:
    """Rows whose valence is row/100, so a batch tells which rows it holds."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        shape = size[::-1] if gray else (*size[::-1], 3)
        uri = _write(tmp_path / f"img{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))
        rows.append(
            {
                "id": f"r{i}",
                "image": uri,
                "source": "t",
                "expression": i % 8,
                "valence": i / 100,
                "arousal": -i / 100,
                "landmarks": rng.uniform(0, min(size) - 1, (68, 2)).astype(np.float32),
                "split": "train",
            }
        )
    return pd.DataFrame(rows)


def _batches(ds: tf.data.Dataset) -> list:
    """One pass as numpy."""
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds]


def _rows(batches: list) -> list[int]:
    """Row numbers in the order the pass delivered them (from the valence tag)."""
    return [round(v * 100) for b in batches for v in b[1]["valence"][:, 0]]


def _equal(a: list, b: list) -> bool:
    """Structures of arrays equal, NaN == NaN."""
    flat_a, flat_b = tf.nest.flatten(a), tf.nest.flatten(b)
    return len(flat_a) == len(flat_b) and all(
        np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        for x, y in zip(flat_a, flat_b, strict=False)
    )


def test_batch_shapes_and_dtypes_per_head(tmp_path):
    ds = make_dataset(_table(tmp_path), image_size=32, channels=3, batch_size=4, training=False)
    batches = _batches(ds)
    assert [len(b[0]) for b in batches] == [4, 4, 2] and int(ds.cardinality()) == 3
    images, targets = batches[0]
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 1
    assert targets["expression"].shape == (4,) and targets["expression"].dtype == np.int32
    for head in ("valence", "arousal"):
        assert targets[head].shape == (4, 1) and targets[head].dtype == np.float32
    assert targets["landmarks"].shape == (4, 136) and targets["landmarks"].dtype == np.float32
    assert _rows(batches) == list(range(N))  # evaluation keeps table order
    table = describe(ds)
    assert list(table["name"]) == ["", "expression", "valence", "arousal", "landmarks"]
    assert steps_per_epoch(10, 4) == 3 and steps_per_epoch(10, 4, drop_remainder=True) == 2


def test_heads_subset_and_drop_remainder(tmp_path):
    ds = make_dataset(
        _table(tmp_path),
        image_size=32,
        channels=3,
        batch_size=4,
        heads=("landmarks", "expression"),
        training=True,
        drop_remainder=True,
    )
    batches = _batches(ds)
    assert len(batches) == 2 and all(len(b[0]) == 4 for b in batches)
    assert set(batches[0][1]) == {"expression", "landmarks"}
    with pytest.raises(ConfigError, match="heads"):
        make_dataset(
            _table(tmp_path),
            image_size=32,
            channels=3,
            batch_size=4,
            heads=("age",),
            training=False,
        )


def test_missing_targets_are_minus_one_and_nan(tmp_path):
    table = _table(tmp_path, n=4)
    table["expression"] = pd.array([3, None, 1, None], dtype="Int64")
    table.loc[[1, 2], "valence"] = np.nan
    table["landmarks"] = [table["landmarks"][0], None, None, table["landmarks"][3]]
    table = table.drop(columns=["arousal"])  # a source with no arousal at all
    _images, targets = _batches(
        make_dataset(table, image_size=32, channels=3, batch_size=4, training=False)
    )[0]
    assert targets["expression"].tolist() == [3, -1, 1, -1]
    assert np.isnan(targets["valence"][:, 0]).tolist() == [False, True, True, False]
    assert np.isnan(targets["arousal"]).all()
    assert pipeline.heads_with_targets(table) == ("expression", "valence", "landmarks")
    assert pipeline.heads_with_targets(table.assign(landmarks=None)) == ("expression", "valence")
    missing = np.isnan(targets["landmarks"])
    assert missing[1].all() and missing[2].all() and not missing[0].any() and not missing[3].any()


def _bright_block_table(tmp_path: Path, width: int, height: int) -> pd.DataFrame:
    """One dark image with a bright 4x4 block; every landmark sits on the block's centre."""
    image = np.zeros((height, width, 3), np.uint8)
    image[8:12, 28:32] = 255
    centre = np.tile(np.array([[29.5, 9.5]], np.float32), (68, 1))  # pixel-centre coordinates
    return pd.DataFrame(
        [
            {
                "id": "a",
                "image": _write(tmp_path / "block.png", image),
                "source": "t",
                "expression": 0,
                "landmarks": centre,
            }
        ]
    )


def _centroid(image: np.ndarray) -> np.ndarray:
    """Brightness-weighted centre (x, y) in pixel-centre coordinates."""
    weights = image.mean(axis=-1).astype(np.float64)
    ys, xs = np.indices(weights.shape)
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


@pytest.mark.parametrize("size", [20, 64])  # shrink (INTER_AREA) and enlarge (INTER_LINEAR)
def test_landmarks_follow_the_resize(tmp_path, size):
    table = _bright_block_table(tmp_path, width=40, height=30)  # not square: x/W and y/H differ
    images, targets = _batches(
        make_dataset(table, image_size=size, channels=3, batch_size=1, training=False)
    )[0]
    points = targets["landmarks"].reshape(68, 2) * size
    expected = (np.array([29.5, 9.5]) + 0.5) * [size / 40, size / 30] - 0.5
    np.testing.assert_allclose(points, np.tile(expected, (68, 1)), atol=1e-4)
    np.testing.assert_allclose(_centroid(images[0]), expected, atol=0.3)
    assert np.all((targets["landmarks"] >= 0) & (targets["landmarks"] <= 1))


def test_flip_augmentation_keeps_landmarks_on_the_bright_pixels(tmp_path):
    table = _bright_block_table(tmp_path, width=40, height=40)
    ds = make_dataset(
        table,
        image_size=40,
        channels=3,
        batch_size=1,
        training=True,
        augmenter=make_online_augmenter(flip_only_config(), seed=0),
    )
    images, targets = _batches(ds)[0]
    point = targets["landmarks"].reshape(68, 2)[0] * 40
    np.testing.assert_allclose(point, [39 - 29.5, 9.5], atol=1e-4)  # x' = W - 1 - x
    np.testing.assert_allclose(_centroid(images[0]), point, atol=0.3)


def test_grayscale_and_rgb_channels(tmp_path):
    rgb_table = _table(tmp_path, n=2)
    gray_dir = tmp_path / "gray"
    gray_dir.mkdir()
    gray_table = _table(gray_dir, n=2, gray=True)
    as_gray = _batches(
        make_dataset(rgb_table, image_size=40, channels=1, batch_size=2, training=False)
    )[0][0]
    expected = np.asarray(Image.open(rgb_table["image"][0]).convert("L"), np.float32)
    assert as_gray.shape == (2, 40, 40, 1)
    np.testing.assert_array_equal(as_gray[0, ..., 0], expected)
    as_rgb = _batches(
        make_dataset(gray_table, image_size=40, channels=3, batch_size=2, training=False)
    )[0][0]
    assert as_rgb.shape == (2, 40, 40, 3)
    np.testing.assert_array_equal(as_rgb[..., 0], as_rgb[..., 2])
    np.testing.assert_array_equal(
        as_rgb[0, ..., 1], np.asarray(Image.open(gray_table["image"][0]), np.float32)
    )


def test_same_seed_same_batches_and_each_epoch_reshuffles(tmp_path):
    table = _table(tmp_path)

    def two_epochs(seed: int) -> list:
        ds = make_dataset(table, image_size=32, channels=3, batch_size=4, training=True, seed=seed)
        return [_batches(ds), _batches(ds)]

    first = two_epochs(1)
    tf.random.set_seed(1234)  # TensorFlow's global seed plays no part
    again = two_epochs(1)
    other = two_epochs(2)
    assert _equal(first, again)
    assert _rows(first[0]) != _rows(first[1])  # a new order each epoch
    assert sorted(_rows(first[0])) == list(range(N))
    assert _rows(other[0]) != _rows(first[0])
    assert _rows(first[0]) == pipeline.epoch_order(N, 1, 0).tolist()


def test_online_augmentation_per_epoch_and_row_is_reproducible(tmp_path):
    table = _table(tmp_path)
    strong = AugmentConfig(hflip_p=0.5, affine_p=1.0, brightness_contrast_p=1.0)

    def by_row(epoch: int, seed: int = 0) -> np.ndarray:
        clock = EpochClock()
        ds = make_dataset(
            table,
            image_size=32,
            channels=3,
            batch_size=4,
            training=True,
            augmenter=make_online_augmenter(strong, seed),
            epoch_clock=clock,
        )
        clock.set(epoch)
        batches = _batches(ds)
        images = np.concatenate([b[0] for b in batches])
        return images[np.argsort(_rows(batches))]

    e0, e1 = by_row(0), by_row(1)
    assert np.array_equal(e0, by_row(0))  # same (seed, epoch, row): same image
    assert not np.array_equal(e0[0], e1[0])  # a new variant each epoch
    assert not np.array_equal(e0[0], by_row(0, seed=5)[0])
    plain = _batches(make_dataset(table, image_size=32, channels=3, batch_size=N, training=False))[
        0
    ][0]
    assert not np.array_equal(e0, plain)
    # the augmenter is ignored outside training
    ignored = make_dataset(
        table,
        image_size=32,
        channels=3,
        batch_size=N,
        training=False,
        augmenter=make_online_augmenter(strong, 0),
    )
    assert np.array_equal(_batches(ignored)[0][0], plain)


def test_fit_sets_the_epoch_the_augmenter_sees(tmp_path):
    seen: list[tuple[int, int]] = []

    def recorder(image, landmarks, row, epoch):
        seen.append((epoch, row))
        return image, landmarks

    clock = EpochClock()
    ds = make_dataset(
        _table(tmp_path),
        image_size=16,
        channels=1,
        batch_size=5,
        training=True,
        heads=("valence",),
        augmenter=recorder,
        epoch_clock=clock,
    )
    inputs = keras.Input((16, 16, 1))
    model = keras.Model(
        inputs, {"valence": keras.layers.Dense(1, name="valence")(keras.layers.Flatten()(inputs))}
    )
    model.compile("sgd", loss={"valence": "mse"})
    seen_in_fit = []

    class Mark(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.clear()

        def on_epoch_end(self, epoch, logs=None):
            seen_in_fit.append(sorted({e for e, _ in seen}))

    model.fit(
        ds,
        epochs=5,
        initial_epoch=3,
        verbose=0,
        shuffle=False,
        callbacks=[clock.callback(), Mark()],
    )
    assert seen_in_fit == [[3], [4]]


def test_zip_uris_give_the_same_batches(tmp_path):
    table = _table(tmp_path, n=4)
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, path in enumerate(table["image"]):
            zf.write(path, f"Dataset/images/{i}.png")
    zipped = table.assign(image=[make_uri(archive, f"Dataset/images/{i}.png") for i in range(4)])
    try:
        plain = _batches(
            make_dataset(table, image_size=24, channels=3, batch_size=4, training=False)
        )
        from_zip = _batches(
            make_dataset(zipped, image_size=24, channels=3, batch_size=4, training=False)
        )
        assert _equal(plain, from_zip)
        missing = zipped.assign(image=[make_uri(archive, "Dataset/images/nope.png")] * 4)
        with pytest.raises(DataError) as caught:
            make_dataset(missing, image_size=24, channels=3, batch_size=4, training=False)
        assert caught.value.member == "Dataset/images/nope.png"
        assert caught.value.path == str(archive)
    finally:
        close_archives()


def test_class_weights_become_expression_sample_weights(tmp_path):
    table = _table(tmp_path, n=8)
    weights = {str(c): 1.0 + c for c in range(8)}  # JSON turns keys into strings
    batches = _batches(
        make_dataset(
            table, image_size=16, channels=1, batch_size=8, training=False, class_weights=weights
        )
    )
    _images, targets, sample_weights = batches[0]
    np.testing.assert_allclose(sample_weights["expression"], 1.0 + targets["expression"])
    for head in ("valence", "arousal", "landmarks"):
        np.testing.assert_array_equal(sample_weights[head], np.ones(8, np.float32))
    with pytest.raises(ConfigError, match="no weight for classes"):
        make_dataset(
            table, image_size=16, channels=1, batch_size=8, training=False, class_weights={0: 1.0}
        )


def test_memory_file_and_no_cache_agree(tmp_path):
    table = _table(tmp_path)
    table = pd.concat([table, table.assign(id=table["id"] + "_copy")], ignore_index=True)
    table["valence"] = np.arange(len(table)) / 100
    kwargs = {"image_size": 24, "channels": 3, "batch_size": 6, "training": True, "seed": 3}
    path = tmp_path / "cache" / "train.npy"
    results = []
    for cache in (True, path, False):
        ds = make_dataset(table, cache=cache, **kwargs)
        results.append([_batches(ds), _batches(ds)])  # second pass reads the cache
    assert _equal(results[0], results[1]) and _equal(results[0], results[2])
    cached = np.load(path, mmap_mode="r", allow_pickle=False)
    assert cached.shape == (N, 24, 24, 3)  # one slot per distinct image, copies share it


def test_missing_and_corrupt_images_are_data_errors(tmp_path):
    table = _table(tmp_path, n=3)
    gone = table.assign(image=table["image"].where(table.index != 1, str(tmp_path / "gone.png")))
    with pytest.raises(DataError, match="image file not found") as caught:
        make_dataset(gone, image_size=16, channels=3, batch_size=2, training=False)
    assert caught.value.path.endswith("gone.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    bad = table.assign(image=table["image"].where(table.index != 2, str(tmp_path / "bad.png")))
    ds = make_dataset(bad, image_size=16, channels=3, batch_size=2, training=False)
    with pytest.raises(DataError) as caught, pipeline.surface_data_errors():
        _batches(ds)
    assert caught.value.path.endswith("bad.png")


def test_resize_helper_matches_augment_resize(tmp_path):
    from helpers.core.landmarks import to_model_space
    from helpers.core.preprocess import decode_for_model
    from helpers.data.augment import resize_with_landmarks

    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    points = rng.uniform(0, 29, (68, 2)).astype(np.float32)
    for size in (20, 64):
        resized, moved = resize_with_landmarks(image, points, size)
        np.testing.assert_allclose(to_model_space(points, 30, 50, size), moved, atol=1e-5)
        decoded, hw = decode_for_model(_write(tmp_path / f"x{size}.png", image), size, 3)
        assert hw == (30, 50)
        np.testing.assert_array_equal(decoded, resized)


def test_a_large_jpeg_decodes_reduced_but_landmarks_keep_its_stored_pixels(tmp_path):
    """A 224 px JPEG for a 48 px model decodes at 1/4 scale; landmarks still map from 224."""
    from helpers.core.landmarks import to_model_space
    from helpers.core.preprocess import decode_for_model
    from helpers.data.synthetic import render_face, sample_face_params

    face, lnd = render_face(sample_face_params(np.random.default_rng(2), 1, 224), 224)
    path = tmp_path / "face.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(face, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    decoded, hw = decode_for_model(str(path), 48, 3)
    assert hw == (224, 224) and decoded.shape == (48, 48, 3)
    direct = cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(decoded.astype(int) - direct).mean() < 3.0
    table = pd.DataFrame({"image": [str(path)], "expression": [1], "landmarks": [lnd]})
    ds = pipeline.make_dataset(table, image_size=48, channels=3, batch_size=1, training=False)
    _, targets = next(iter(ds))
    np.testing.assert_allclose(
        targets["landmarks"].numpy().reshape(68, 2),
        to_model_space(lnd, 224, 224, 48) / 48,
        atol=1e-6,
    )


def _pydataset_pass(ds: pipeline.TableBatches) -> list:
    """One pass as Keras fit() reads a PyDataset: worker threads, then the epoch's end."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(ds, shuffle=False)
    adapter.on_epoch_begin()
    batches = list(adapter.get_numpy_iterator())
    adapter.on_epoch_end()
    return batches


def test_pydataset_gives_the_tf_data_batches(tmp_path):
    """Same rows, order, augmentation and sample weights, epoch by epoch, from worker threads;
    take() as tf.data's."""
    table = _table(tmp_path)
    common = {
        "image_size": 24,
        "channels": 3,
        "batch_size": 4,
        "training": True,
        "seed": 7,
        "augmenter": make_online_augmenter(AugmentConfig(affine_p=1.0), 7),
        "class_weights": {c: 1.0 + c for c in range(8)},
    }
    graph = make_dataset(table, epoch_clock=EpochClock(), **common)
    clock = EpochClock()
    python = pipeline.make_pydataset(table, epoch_clock=clock, workers=3, **common)
    assert len(python) == int(graph.cardinality()) == 3
    for _epoch in range(2):
        assert _equal(_pydataset_pass(python), _batches(graph))
    assert clock.peek() == 2  # each pass ended its epoch
    clock.set(0)  # fit()'s callback pins the epoch; the first epoch again
    assert _equal(_pydataset_pass(python), _batches(make_dataset(table, **common)))
    plain = {k: v for k, v in common.items() if k not in ("augmenter", "class_weights")}
    evaluation = {**plain, "training": False}
    assert _equal(
        _pydataset_pass(pipeline.make_pydataset(table, **evaluation)),
        _batches(make_dataset(table, **evaluation)),
    )
    few = pipeline.make_pydataset(table, **plain).take(2)
    assert len(few) == 2
    assert _equal(_pydataset_pass(few), _batches(make_dataset(table, **plain).take(2)))


def test_pydataset_raises_the_data_error_naming_the_file(tmp_path):
    table = _table(tmp_path, n=3)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    bad = table.assign(image=table["image"].where(table.index != 2, str(tmp_path / "bad.png")))
    ds = pipeline.make_pydataset(
        bad, image_size=16, channels=3, batch_size=2, training=False, cache=False
    )
    with pytest.raises(DataError) as caught, pipeline.surface_data_errors():
        _pydataset_pass(ds)
    assert caught.value.path.endswith("bad.png")
    with pytest.raises(IndexError):
        ds[2]


@pytest.mark.parametrize("mixing", [None, {"mode": "cutmix", "alpha": 1.0, "p": 0.5}])
def test_worker_processes_give_the_batches_built_here(tmp_path, mixing):
    """Forked workers build every training batch as this process would, epoch by epoch, for
    both loaders; evaluation batches stay here."""
    table = _table(tmp_path)
    common = {
        "image_size": 24,
        "channels": 3,
        "batch_size": 4,
        "seed": 3,
        "augmenter": make_online_augmenter(AugmentConfig(affine_p=1.0, dropout_p=0.5), 3),
        "class_weights": {c: 1.0 + c for c in range(8)},
        "mixing": mixing,
    }
    here = make_dataset(table, training=True, epoch_clock=EpochClock(), **common)
    forked = make_dataset(table, training=True, epoch_clock=EpochClock(), processes=2, **common)
    python = pipeline.make_pydataset(table, training=True, processes=2, workers=1, **common)
    mapped = make_dataset(
        table, training=True, processes=1, cache=tmp_path / "cache.npy", **common
    )  # a memory-mapped cache, filled before the fork
    assert python.source.processes is not None and python.source.processes.processes == 2
    assert python.workers == 2  # a Keras thread waits on each process
    for _epoch in range(2):
        expected = _batches(here)
        assert _equal(_batches(forked), expected)
        assert _equal(_pydataset_pass(python), expected)
        assert _equal(_batches(mapped), expected)
    evaluation = pipeline.make_pydataset(table, training=False, processes=2, **common)
    assert evaluation.source.processes is None


def test_worker_processes_fork_safely_beside_native_threads(tmp_path):
    """A process whose OpenCV thread pool is running (any earlier warp or resize of a large
    image), and whose garbage holds a finaliser that would wait for its threads, still forks
    workers that finish their batches; in a child process, so a deadlock fails the test
    instead of hanging the run."""
    import subprocess
    import sys

    table = _table(tmp_path, n=8)
    table.to_pickle(tmp_path / "table.pkl")
    code = f"""
import cv2, numpy as np, pandas as pd
from helpers.data.augment import AugmentConfig, make_online_augmenter
from helpers.train import pipeline
import gc, os, time
gc.disable()  # the garbage below outlives any automatic collection until the fork
big = np.zeros((2000, 2000, 3), np.uint8)
for _ in range(3):
    cv2.warpAffine(big, np.float32([[1, 0.1, 5], [0.1, 1, 3]]), (2000, 2000))
class Native:  # a finaliser that waits for this process's threads, as a tf.data iterator's
    parent = os.getpid()
    def __del__(self):
        while os.getpid() != self.parent:
            time.sleep(1)
garbage = Native()
garbage.cycle = garbage
del garbage  # unreachable, not yet collected
table = pd.read_pickle({str(tmp_path / "table.pkl")!r})
augment = make_online_augmenter(AugmentConfig(affine_p=1.0), 0)
def collecting(*args):  # a worker's collector runs mid-batch
    gc.collect()
    return augment(*args)
ds = pipeline.make_pydataset(table, image_size=24, channels=3, batch_size=4, training=True,
                             augmenter=collecting, processes=2)
print(sum(len(ds[i][0]) for i in range(len(ds))))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "8"


def test_worker_processes_run_their_libraries_on_one_thread():
    """Each worker process is one core's worth: OpenCV and BLAS at one thread in the children,
    which start no thread pool of their own (14 machine-sized pools oversubscribe a 16-core GPU
    host), the parent's own settings back as they were; in a child process, so a deadlock fails
    the test instead of hanging it. Linux: threads counted in /proc."""
    import subprocess
    import sys

    code = """
import cv2, numpy as np, os, threadpoolctl
from helpers.train.workers import BatchProcesses
big = np.zeros((2000, 2000, 3), np.uint8)
cv2.warpAffine(big, np.float32([[1, 0.1, 5], [0.1, 1, 3]]), (2000, 2000))  # pool running
np.ones((500, 500)) @ np.ones((500, 500))
def blas():
    return max([p["num_threads"] for p in threadpoolctl.threadpool_info()
                if p["user_api"] == "blas"] or [0])
def in_worker(rows, epochs):
    cv2.warpAffine(big[:48, :48], np.float32([[1, 0.1, 5], [0.1, 1, 3]]), (48, 48))
    np.ones((3, 3)) @ np.ones((3, 3))
    return cv2.getNumThreads(), blas(), len(os.listdir("/proc/self/task"))
cv2.setNumThreads(3)
before = (cv2.getNumThreads(), blas())
workers = BatchProcesses(in_worker, 2)
print(before, workers.build(np.arange(2), np.zeros(2)), (cv2.getNumThreads(), blas()))
workers.close()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    before, child, after = eval(done.stdout.strip().replace(") (", "), ("))
    assert child == (1, 1, 1) and after == before and before[0] == 3  # no pool started either


@pytest.mark.parametrize("loader", ["tf.data", "python"])
def test_a_worker_process_error_names_the_file(tmp_path, loader):
    table = _table(tmp_path, n=4)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    bad = table.assign(image=table["image"].where(table.index != 2, str(tmp_path / "bad.png")))
    make = make_dataset if loader == "tf.data" else pipeline.make_pydataset
    ds = make(bad, image_size=16, channels=3, batch_size=2, training=True, cache=False, processes=2)
    read = _batches if loader == "tf.data" else _pydataset_pass
    with pytest.raises(DataError) as caught, pipeline.surface_data_errors():
        read(ds)
    problem = caught.value.problem  # its chunk lengths are garbage: read past the file's end
    assert caught.value.path.endswith("bad.png") and problem.startswith("truncated image")


def test_input_processes_setting(monkeypatch):
    """The "auto" setting: every core but two on a GPU when batches are augmented, else none;
    a bad value names the setting."""
    from helpers.train import backend, workers
    from helpers.train.config import TrainConfig

    assert workers.auto_processes(gpu=True, augmenting=True, cpus=16) == 14
    assert workers.auto_processes(gpu=True, augmenting=True, cpus=64) == workers.MAX_PROCESSES
    assert workers.auto_processes(gpu=True, augmenting=True, cpus=2) == 0
    assert workers.auto_processes(gpu=True, augmenting=False, cpus=16) == 0
    assert workers.auto_processes(gpu=False, augmenting=True, cpus=16) == 0
    with monkeypatch.context() as patch:
        patch.setattr(workers.sys, "platform", "darwin")
        assert workers.auto_processes(gpu=True, augmenting=True, cpus=16) == 0
    assert backend.input_processes("auto", augmenting=True) == 0  # this machine has no GPU
    monkeypatch.setattr(backend, "gpu_count", lambda: 1)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 8)
    assert backend.input_processes("auto", augmenting=True) == 6
    assert backend.input_processes(3, augmenting=False) == 3
    assert TrainConfig(model="custom_cnn", input_processes=4).input_processes == 4
    for bad in (-1, 1.5, "many", True):
        with pytest.raises(ConfigError, match="input_processes"):
            TrainConfig(model="custom_cnn", input_processes=bad)
    with pytest.raises(ConfigError, match="processes"):
        make_dataset(_TINY, image_size=16, channels=3, batch_size=2, training=True, processes=-2)


_TINY = pd.DataFrame({"image": ["unused.png"], "expression": [0]})


def test_training_and_scoring_run_on_jax_without_tensorflow(tmp_path):
    """KERAS_BACKEND=jax with TensorFlow unimportable: train() reads the PyDataset (its batches
    built by two forked processes, as on a GPU machine), the card names the backend, and
    predict_table scores with ten-crop (a GPU machine may have JAX and
    no TensorFlow build)."""
    table = _table(tmp_path, n=16)
    table.to_pickle(tmp_path / "table.pkl")
    code = f"""
import sys
sys.modules["tensorflow"] = None  # any import of it fails
import pandas as pd
from helpers.evaluation.predictions import predict_table
from helpers.train.config import TrainConfig
from helpers.train.fit import train
table = pd.read_pickle({str(tmp_path / "table.pkl")!r})
cfg = TrainConfig(model="custom_cnn", image_size=24, epochs=2, batch_size=4, verbose=0,
                  shared_units=8, heads=("expression", "valence"), input_processes=2)
result = train(cfg, table.iloc[:12], table.iloc[12:], {str(tmp_path / "run")!r},
               augment_settings={{"online": True, "config": {{"rotate_limit": 5.0}}, "seed": 0}})
pred = predict_table(result.model, table.iloc[12:], progress=False, tta="tencrop")
card = result.card
print(card["versions"]["backend"], card["data"]["input_pipeline"],
      card["data"]["input_processes"], card["epochs_run"], len(pred),
      pred["expression_pred"].between(0, 7).all())
"""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "KERAS_BACKEND": "jax"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-6:] == ["jax", "python", "2", "2", "4", "True"]


@pytest.mark.parametrize("training", [True, False])
def test_datasets_run_without_tf_data_autotuning(tmp_path, training):
    # Its model thread holds up the freeing of every iterator (so every fit()) by up to a minute.
    table = _table(tmp_path)
    ds = make_dataset(table, image_size=32, channels=3, batch_size=4, training=training)
    assert ds.options().autotune.enabled is False
    assert len(list(ds)) == steps_per_epoch(len(table), 4)
