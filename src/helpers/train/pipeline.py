"""Input pipelines: a records table in, (images, targets[, sample weights]) batches out.

Two loaders deliver the same batches: make_dataset (tf.data, for the TensorFlow backend) and
make_pydataset (a Keras PyDataset, for any Keras backend: JAX or PyTorch where TensorFlow is not
installed). TensorFlow is imported only by the first.

Each image is decoded and resized once into a random-access cache (in memory, in a
memory-mapped file, or not at all), so every epoch can take a full fresh permutation of the
rows without a shuffle buffer, and online augmentation runs after the cache. Order and
augmentation depend only on (seed, epoch, row), never on TensorFlow's global seed or on how
many times the dataset was iterated before, so a resumed run sees the batches an
uninterrupted run would have seen. The same property lets forked worker processes build
training batches (`processes`, helpers.train.workers) without changing a pixel of them.

Batches: images float32 [B, S, S, C] in 0..255; targets per head: expression int32 [B]
(-1 = missing), valence / arousal float32 [B, 1] (NaN = missing), landmarks float32 [B, 136]
= x0/S, y0/S, x1/S, ... in the model input (NaN row = missing); with class weights also
sample weights per head float32 [B] (expression by its class weight, the other heads 1). Training
batches blended by mixup or CutMix carry soft expression targets instead, float32 [B, n_classes]
(a row of zeros = missing).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import pandas as pd

from helpers.core.errors import ConfigError, DataError
from helpers.core.images import parse_uri
from helpers.core.labels import HEADS, check_heads
from helpers.core.landmarks import N_POINTS, to_model_space
from helpers.core.preprocess import decode_for_model
from helpers.core.records import landmarks_array
from helpers.data.mixing import MixSettings, batch_rng, mix_batch
from helpers.train.workers import BatchProcesses, check_processes

if TYPE_CHECKING:
    import tensorflow as tf

Augmenter = Callable[[np.ndarray, np.ndarray, int, int], tuple[np.ndarray, np.ndarray]]
_NO_EPOCH = -1  # evaluation passes: no augmentation


# --------------------------------------------------------------------------- epochs


class EpochClock:
    """The epoch of the next pass over a training dataset: fit() pins it, plain loops advance it."""

    def __init__(self, start: int = 0):
        self._next = int(start)
        self._lock = threading.Lock()

    def take(self) -> np.int64:
        """Called once per pass, when the pass starts (from inside tf.data)."""
        with self._lock:
            epoch, self._next = self._next, self._next + 1
        return np.int64(epoch)

    def peek(self) -> int:
        """The epoch of the next pass, without taking it (a PyDataset reads it per batch)."""
        with self._lock:
            return self._next

    def set(self, epoch: int) -> None:
        """The next pass belongs to `epoch` (also after a resume, whatever ran before)."""
        with self._lock:
            self._next = int(epoch)

    def callback(self) -> keras.callbacks.Callback:
        """Keras callback that pins the clock to fit()'s epoch number at each epoch start."""
        return _EpochClockCallback(self)


class _EpochClockCallback(keras.callbacks.Callback):
    """fit() creates each epoch's iterator after on_epoch_begin, so the pass reads this epoch."""

    def __init__(self, clock: EpochClock):
        super().__init__()
        self.clock = clock

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.clock.set(epoch)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The row order of one epoch: numpy's PCG64 is stable across versions and platforms."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n).astype(np.int64)


# --------------------------------------------------------------------------- decoding cache

_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _decode_pool() -> ThreadPoolExecutor:
    """One decoding pool per process (a forked child makes its own), one thread per core."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            workers = max(1, min(8, os.cpu_count() or 1))
            _pool = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="decode"))
        return _pool[1]


def _map_decode(
    uris: Sequence[str], size: int, channels: int
) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """decode_for_model of several images, in parallel when there is more than one."""
    if len(uris) < 2 or (os.cpu_count() or 1) < 2:
        return [decode_for_model(u, size, channels) for u in uris]
    return list(_decode_pool().map(lambda u: decode_for_model(u, size, channels), uris))


class DecodedCache:
    """Decoded, resized images by slot, each filled on first use; in memory or a mapped file.

    With `path`, the pixels live in a .npy file that the OS pages in and out, so a set larger
    than memory still decodes only once. Thread-safe for tf.data's parallel map: a slot is
    marked filled only after its pixels are written, and a race decodes the same image twice.
    """

    def __init__(
        self,
        uris: list[str],
        size: int,
        channels: int,
        path: str | os.PathLike | None = None,
        enabled: bool = True,
    ):
        self.uris, self.size, self.channels = uris, int(size), int(channels)
        self.enabled = enabled
        self.path = None if path is None else Path(path)
        shape = (len(uris), self.size, self.size, self.channels) if enabled else (0,)
        if not enabled:
            self.pixels = np.zeros(shape, np.uint8)
        elif self.path is None:
            self.pixels = np.zeros(shape, np.uint8)  # calloc: pages are committed when filled
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.pixels = np.lib.format.open_memmap(
                self.path, mode="w+", dtype=np.uint8, shape=shape
            )
        self.sizes = np.zeros((len(uris), 2), np.int64)  # (h, w) of the stored image; 0 = empty

    def get(self, slot: int) -> tuple[np.ndarray, tuple[int, int]]:
        """The image of one slot (a copy) and its original (height, width)."""
        image, hw = self.get_many([slot])[0]
        return np.array(image), hw

    def get_many(self, slots: Sequence[int]) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """Images (read-only views when cached) and original sizes of several slots.

        Slots not decoded yet are decoded on a thread pool: JPEG/PNG decoding and resizing
        release the GIL, so they run in parallel, while the Python-bound augmentation that
        follows stays on one thread instead of fighting for the GIL.
        """
        slots = [int(s) for s in slots]
        missing = list(dict.fromkeys(s for s in slots if not self._filled(s)))
        decoded = dict(
            zip(
                missing,
                _map_decode([self.uris[s] for s in missing], self.size, self.channels),
                strict=False,
            )
        )
        if self.enabled:
            for slot, (image, hw) in decoded.items():
                self.pixels[slot] = image
                self.sizes[slot] = hw
        out = []
        for slot in slots:
            if slot in decoded:
                out.append(decoded[slot])
            else:
                h, w = self.sizes[slot]
                out.append((self.pixels[slot], (int(h), int(w))))
        return out

    def _filled(self, slot: int) -> bool:
        """Whether a slot holds its decoded image."""
        return self.enabled and self.sizes[slot, 0] > 0

    @property
    def filled(self) -> int:
        """Slots decoded so far."""
        return int((self.sizes[:, 0] > 0).sum())


# --------------------------------------------------------------------------- data errors

_error_lock = threading.Lock()
_last_error: list[DataError] = []


def _remember(error: DataError) -> None:
    """TensorFlow turns Python exceptions into opaque op errors; keep the real one."""
    with _error_lock:
        _last_error[:] = [error]


@contextlib.contextmanager
def surface_data_errors() -> Iterator[None]:
    """Re-raise a DataError from inside the pipeline as itself, not as a TensorFlow op error."""
    with _error_lock:
        _last_error.clear()
    try:
        yield
    except Exception as error:
        if not _is_op_error(error):
            raise  # a PyDataset raises the DataError itself
        with _error_lock:
            found = _last_error[0] if _last_error else None
        if found is None:
            raise
        raise found from error


def _is_op_error(error: BaseException) -> bool:
    """A TensorFlow op error (only when TensorFlow is loaded: other backends never raise one)."""
    tf_module = sys.modules.get("tensorflow")
    errors = getattr(tf_module, "errors", None)
    return errors is not None and isinstance(error, errors.OpError)


def check_images(table: pd.DataFrame) -> None:
    """Fail before training, naming the file, when an image or archive member is missing."""
    by_archive: dict[str, list[str]] = {}
    for uri in pd.unique(table["image"].astype(str)):
        archive, member = parse_uri(uri)
        if archive is None:
            if not os.path.isfile(member):
                raise DataError(member, "image file not found")
        else:
            by_archive.setdefault(archive, []).append(member)
    for archive, members in by_archive.items():
        if not os.path.isfile(archive):
            raise DataError(archive, "archive not found")
        try:
            with zipfile.ZipFile(archive) as zf:  # central directory only; nothing decompressed
                names = set(zf.namelist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(archive, f"not a readable zip archive ({exc})") from exc
        missing = [m for m in members if m not in names]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(archive, f"image not in the archive{more}", missing[0])


# --------------------------------------------------------------------------- the table as arrays


def _float_column(table: pd.DataFrame, column: str) -> np.ndarray:
    """Valence/arousal as float32, NaN where absent (or where the column is absent)."""
    if column not in table.columns:
        return np.full(len(table), np.nan, np.float32)
    return pd.to_numeric(table[column], errors="coerce").to_numpy(np.float32, na_value=np.nan)


def _expression_column(table: pd.DataFrame) -> np.ndarray:
    """Expression as int32 with -1 where absent (unlabelled rows train the other heads)."""
    if "expression" not in table.columns:
        return np.full(len(table), -1, np.int32)
    values = pd.to_numeric(table["expression"], errors="coerce").to_numpy(
        np.float64, na_value=np.nan
    )
    return np.where(np.isnan(values), -1, values).astype(np.int32)


def heads_with_targets(table: pd.DataFrame) -> tuple[str, ...]:
    """Heads the table can teach: at least one expression, valence, arousal or landmark target."""
    present = {
        "expression": bool((_expression_column(table) >= 0).any()),
        "valence": bool(np.isfinite(_float_column(table, "valence")).any()),
        "arousal": bool(np.isfinite(_float_column(table, "arousal")).any()),
        "landmarks": "landmarks" in table.columns
        and bool(
            table["landmarks"]
            .map(lambda v: v is not None and not (isinstance(v, float) and np.isnan(v)))
            .any()
        ),
    }
    return tuple(h for h in HEADS if present[h])


def _sample_weights(expression: np.ndarray, class_weights: Mapping[Any, float]) -> np.ndarray:
    """Per-row expression weight; keys may be ints or the strings JSON makes of them."""
    weights = {int(k): float(v) for k, v in class_weights.items()}
    present = sorted(set(expression[expression >= 0].tolist()))
    lacking = [c for c in present if c not in weights]
    if lacking:
        raise ConfigError(
            f"class_weights has no weight for classes {lacking}; given: {sorted(weights)}"
        )
    bad = {c: w for c, w in weights.items() if not (math.isfinite(w) and w >= 0)}
    if bad:
        raise ConfigError(f"class weights must be finite and >= 0, got {bad}")
    return np.array([weights.get(int(c), 1.0) for c in expression], np.float32)


# --------------------------------------------------------------------------- the dataset


def steps_per_epoch(n: int, batch_size: int, drop_remainder: bool = False) -> int:
    """Batches in one pass over n rows."""
    return n // batch_size if drop_remainder else math.ceil(n / batch_size)


def cache_bytes(table: pd.DataFrame, image_size: int, channels: int) -> int:
    """Bytes a full decoded cache takes (one slot per distinct image), to choose memory or disk."""
    return int(table["image"].nunique()) * int(image_size) ** 2 * int(channels)


def _validate(n: int, image_size: Any, channels: Any, batch_size: Any, seed: Any) -> None:
    """Argument checks up front, each naming the argument."""
    for name, value, low in (
        ("image_size", image_size, 8),
        ("batch_size", batch_size, 1),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ConfigError(f"make_dataset: {name} must be an integer >= {low}, got {value!r}")
    if channels not in (1, 3):
        raise ConfigError(f"make_dataset: channels must be 1 or 3, got {channels!r}")
    if n == 0:
        raise ConfigError("make_dataset: the table has no rows")


class _TableSource:
    """What both loaders share: the decoded cache, the targets as arrays and one batch's work."""

    def __init__(
        self,
        table: pd.DataFrame,
        *,
        image_size: int,
        channels: int,
        heads: tuple[str, ...],
        augmenter: Augmenter | None,
        cache: bool | str | os.PathLike,
        class_weights: Mapping[Any, float] | None,
        mixing: MixSettings | None = None,
        n_classes: int = 8,
        seed: int = 0,
    ):
        self.n, self.size, self.channels, self.heads = len(table), image_size, channels, heads
        self.mixing, self.n_classes, self.seed = mixing, int(n_classes), int(seed)
        uris = table["image"].astype(str).to_numpy()
        unique, self.slots = np.unique(uris, return_inverse=True)
        self.store = DecodedCache(
            list(unique),
            image_size,
            channels,
            path=cache if isinstance(cache, (str, os.PathLike)) else None,
            enabled=cache is not False and cache is not None,
        )
        self.points = (
            landmarks_array(table)
            if "landmarks" in table.columns
            else np.full((self.n, N_POINTS, 2), np.nan, np.float32)
        )
        self.augment = augmenter
        self.processes: BatchProcesses | None = None  # set by start_processes
        self.columns = {
            "expression": _expression_column(table),
            "valence": _float_column(table, "valence")[:, None],
            "arousal": _float_column(table, "arousal")[:, None],
        }
        self.weights = (
            None
            if class_weights is None
            else _sample_weights(self.columns["expression"], class_weights)
        )

    def _fetch(
        self, row: int, epoch: int, image: np.ndarray, hw: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image and landmarks of one decoded row, augmented for this epoch."""
        size = self.size
        pts = to_model_space(self.points[row], *hw, size)
        if self.augment is not None and epoch >= 0:
            image, pts = self.augment(image, pts, row, epoch)
            image = np.asarray(image, np.uint8).reshape(size, size, self.channels)
        return image, np.asarray(pts, np.float32).reshape(N_POINTS * 2) / np.float32(size)

    def pixels(self, rows: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A whole batch in one Python call: per-image calls would cost more than the work."""
        images = np.empty((len(rows), self.size, self.size, self.channels), np.uint8)
        lnds = np.empty((len(rows), N_POINTS * 2), np.float32)
        try:
            decoded = self.store.get_many(self.slots[rows])
            for i, (row, epoch, (image, hw)) in enumerate(zip(rows, epochs, decoded, strict=False)):
                images[i], lnds[i] = self._fetch(int(row), int(epoch), image, hw)
        except DataError as error:
            _remember(error)
            raise
        return images, lnds

    def mixed(self, rows: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, ...]:
        """A blended training batch (helpers.data.mixing): images, soft expression targets,
        valence, arousal, landmarks and expression weights, all float32."""
        if self.mixing is None:
            raise ConfigError("this batch source was made without a mixing setting")
        images, lnd = self.pixels(rows, epochs)
        batch = mix_batch(
            images,
            self.columns["expression"][rows],
            self.n_classes,
            self.mixing,
            batch_rng(self.seed, int(epochs[0]), int(rows[0])),  # a batch is never empty
        )
        lnd = np.where(batch.mixed[:, None], np.float32(np.nan), lnd).astype(np.float32)
        weights = np.ones(len(rows), np.float32) if self.weights is None else self.weights[rows]
        return (
            batch.images,
            batch.soft,
            batch.blend(self.columns["valence"][rows]),
            batch.blend(self.columns["arousal"][rows]),
            lnd,
            batch.blend(weights),
        )

    def work(self, rows: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, ...]:
        """A batch's Python-bound part, here: pixels and landmarks (uint8, float32), or the six
        arrays of a blended batch (mixed)."""
        return self.mixed(rows, epochs) if self.mixing is not None else self.pixels(rows, epochs)

    def parts(self, rows: np.ndarray, epochs: np.ndarray) -> tuple[np.ndarray, ...]:
        """work() of a batch, in a worker process when training batches have them."""
        if self.processes is None or len(epochs) == 0 or epochs[0] == _NO_EPOCH:
            return self.work(rows, epochs)
        try:
            return tuple(self.processes.build(np.asarray(rows), np.asarray(epochs)))
        except DataError as error:
            _remember(error)
            raise

    def start_processes(self, processes: int) -> None:
        """Build training batches in `processes` forked workers (0: here), the cache filled
        first so that each reads its pixels instead of decoding its own copy."""
        if processes <= 0:
            return
        if self.store.enabled:
            self.fill()
        self.processes = BatchProcesses(self.work, processes)

    def targets(
        self, rows: np.ndarray, epochs: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """One batch in numpy: images float32, targets per head, sample weights per head."""
        if self.mixing is not None:
            images, soft, valence, arousal, lnd, expression = self.parts(rows, epochs)
            columns = {"expression": soft, "valence": valence, "arousal": arousal}
        else:
            pixels, lnd = self.parts(rows, epochs)
            images, columns = (
                pixels.astype(np.float32),
                {h: v[rows] for h, v in self.columns.items()},
            )
            expression = None if self.weights is None else self.weights[rows]
        targets = {h: lnd if h == "landmarks" else columns[h] for h in self.heads}
        if self.weights is None:
            return images, targets, None
        ones = np.ones(len(rows), np.float32)
        return images, targets, {h: expression if h == "expression" else ones for h in self.heads}

    def fill(self) -> None:
        """Decode every image now (a PyDataset's worker threads then only augment)."""
        for start in range(0, len(self.store.uris), 1024):
            self.store.get_many(range(start, min(start + 1024, len(self.store.uris))))


def _prepare(
    table: pd.DataFrame,
    image_size: Any,
    channels: Any,
    batch_size: Any,
    heads: Any,
    training: bool,
    seed: Any,
    augmenter: Augmenter | None,
    cache: bool | str | os.PathLike,
    class_weights: Mapping[Any, float] | None,
    check_files: bool,
    mixing: MixSettings | Mapping[str, Any] | None = None,
    n_classes: int = 8,
    processes: Any = 0,
) -> _TableSource:
    """Checks shared by both loaders, then the source they read (with its worker processes
    when training asks for them)."""
    heads = check_heads(heads)
    _validate(len(table), image_size, channels, batch_size, seed)
    processes = check_processes(processes, where="processes")
    if processes == "auto":
        raise ConfigError('processes: resolve "auto" first (helpers.train.backend)')
    if check_files:
        check_images(table)
    source = _TableSource(
        table,
        image_size=int(image_size),
        channels=int(channels),
        heads=heads,
        augmenter=augmenter if training else None,
        cache=cache,
        class_weights=class_weights,
        mixing=MixSettings.from_value(mixing) if training else None,
        n_classes=n_classes,
        seed=int(seed),
    )
    if training:
        source.start_processes(int(processes))
    return source


def make_dataset(
    table: pd.DataFrame,
    *,
    image_size: int,
    channels: int,
    batch_size: int,
    heads: Any = HEADS,
    training: bool,
    seed: int = 0,
    augmenter: Augmenter | None = None,
    cache: bool | str | os.PathLike = True,
    class_weights: Mapping[Any, float] | None = None,
    drop_remainder: bool = False,
    epoch_clock: EpochClock | None = None,
    check_files: bool = True,
    mixing: MixSettings | Mapping[str, Any] | None = None,
    n_classes: int = 8,
    processes: int = 0,
) -> tf.data.Dataset:
    """tf.data batches for model.fit/evaluate/predict from a records table (module docstring).

    training: a fresh seeded permutation each epoch and `augmenter(image, landmarks, row,
    epoch)` after the cache; otherwise table order, no augmentation. cache: True (memory),
    False (decode every time: streams any size), or a file path (memory-mapped .npy).
    epoch_clock: share one with training's callback so fit()'s epoch drives order and
    augmentation; without it each pass over the dataset is the next epoch. mixing: mixup or
    CutMix of training batches (helpers.data.mixing); the expression target is then float32
    [B, n_classes], blended as the images were. processes: forked workers that build training
    batches (helpers.train.workers), that many in flight; 0 builds them here.
    """
    import tensorflow as tf

    source = _prepare(
        table,
        image_size,
        channels,
        batch_size,
        heads,
        training,
        seed,
        augmenter,
        cache,
        class_weights,
        check_files,
        mixing,
        n_classes,
        processes,
    )
    n, size, n_channels, heads = source.n, source.size, source.channels, source.heads
    columns = {head: tf.constant(values) for head, values in source.columns.items()}
    weights = None if source.weights is None else tf.constant(source.weights)

    def load_mixed(rows: tf.Tensor, epochs: tf.Tensor) -> tuple:
        """One blended batch: the numpy side blends images and targets together."""
        parts = tf.numpy_function(source.parts, [rows, epochs], [tf.float32] * 6, stateful=False)
        images, soft, valence, arousal, lnd, expr_weights = parts
        images = tf.ensure_shape(images, [None, size, size, n_channels])
        found = {
            "expression": tf.ensure_shape(soft, [None, source.n_classes]),
            "valence": tf.ensure_shape(valence, [None, 1]),
            "arousal": tf.ensure_shape(arousal, [None, 1]),
            "landmarks": tf.ensure_shape(lnd, [None, N_POINTS * 2]),
        }
        targets = {h: found[h] for h in heads}
        return with_weights(images, targets, tf.ensure_shape(expr_weights, [None]))

    def load(rows: tf.Tensor, epochs: tf.Tensor) -> tuple:
        """One batch: images, targets per head[, sample weights per head]."""
        images, lnd = tf.numpy_function(
            source.parts, [rows, epochs], [tf.uint8, tf.float32], stateful=False
        )
        images = tf.cast(tf.ensure_shape(images, [None, size, size, n_channels]), tf.float32)
        lnd = tf.ensure_shape(lnd, [None, N_POINTS * 2])
        targets = {h: lnd if h == "landmarks" else tf.gather(columns[h], rows) for h in heads}
        return with_weights(images, targets, None if weights is None else tf.gather(weights, rows))

    def with_weights(images: tf.Tensor, targets: dict, expression: tf.Tensor | None) -> tuple:
        """(images, targets), and with class weights the sample weights per head (others 1)."""
        if weights is None or expression is None:
            return images, targets
        ones = tf.ones_like(expression)
        return images, targets, {h: expression if h == "expression" else ones for h in heads}

    if training:
        clock = epoch_clock or EpochClock()

        def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
            """All rows once, in this epoch's order."""
            order = tf.numpy_function(
                lambda e: epoch_order(n, int(seed), e), [epoch], tf.int64, stateful=False
            )
            rows = tf.data.Dataset.from_tensor_slices(tf.ensure_shape(order, [n]))
            return rows.map(lambda r: (r, epoch))

        passes = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(
            lambda _: tf.reshape(tf.numpy_function(clock.take, [], tf.int64, stateful=True), [])
        )
        indices = passes.flat_map(one_epoch)
    else:
        indices = tf.data.Dataset.range(n).map(lambda r: (r, tf.constant(_NO_EPOCH, tf.int64)))
    ds = indices.batch(int(batch_size), drop_remainder=drop_remainder)
    # One batch at a time in this process: decoding inside a batch is already parallel
    # (DecodedCache.get_many), and two Python-bound batches at once only trade the GIL back and
    # forth. With worker processes, one batch in flight per process. prefetch still keeps the
    # next batches coming while the model trains.
    ds = ds.map(
        load_mixed if source.mixing is not None else load,
        num_parallel_calls=max(1, source.processes.processes if source.processes else 1),
        deterministic=True,
    )
    # flat_map hides the length; Keras needs it for progress bars and its epoch bookkeeping.
    ds = ds.apply(
        tf.data.experimental.assert_cardinality(steps_per_epoch(n, int(batch_size), drop_remainder))
    )
    return without_autotuning(ds.prefetch(tf.data.AUTOTUNE))


def without_autotuning(ds: tf.data.Dataset) -> tf.data.Dataset:
    """tf.data's autotuning off, so that freeing an iterator does not wait out its sleep.

    Its model thread sleeps in doubling periods (10 ms up to a minute), and TensorFlow 2.21
    waits for the sleep under way to end when an iterator is freed: fit() returned up to a
    minute after its last epoch (smoke ResNet50 `train()`: 121 s, 25 of them after the last
    epoch, against 82 s). Nothing here needs it: every map sets its own parallelism, and
    prefetch(AUTOTUNE) keeps the next batch coming without it.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


class TableBatches(keras.utils.PyDataset):
    """make_dataset's batches as a Keras PyDataset, so JAX and PyTorch backends train too.

    Batch k of epoch e holds the same rows, augmented the same way, as tf.data's: the epoch
    comes from the clock that fit()'s callback pins, so worker threads may build batches in any
    order. The cache is filled before the first batch, so workers only augment.
    """

    def __init__(
        self,
        source: _TableSource,
        *,
        batch_size: int,
        training: bool,
        seed: int,
        clock: EpochClock,
        drop_remainder: bool,
        workers: int,
    ):
        # Keras's threads only wait when worker processes build the batches: one per process.
        in_flight = max(workers, source.processes.processes if source.processes else 0)
        super().__init__(
            workers=in_flight, use_multiprocessing=False, max_queue_size=max(16, 2 * in_flight)
        )
        self.source, self.batch_size, self.training = source, int(batch_size), training
        self.seed, self.clock = int(seed), clock
        self.steps = steps_per_epoch(source.n, self.batch_size, drop_remainder)
        self._order: tuple[int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.steps

    def take(self, count: int) -> TableBatches:
        """The first `count` batches of each epoch, as tf.data's take (same object, shorter)."""
        self.steps = min(self.steps, int(count))
        return self

    def _rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of one batch and the epoch each is augmented for."""
        rows = np.arange(index * self.batch_size, min((index + 1) * self.batch_size, self.source.n))
        if not self.training:
            return rows, np.full(len(rows), _NO_EPOCH, np.int64)
        epoch = self.clock.peek()
        with self._lock:
            if self._order is None or self._order[0] != epoch:
                self._order = (epoch, epoch_order(self.source.n, self.seed, epoch))
            order = self._order[1]
        return order[rows], np.full(len(rows), epoch, np.int64)

    def __getitem__(self, index: int) -> tuple:
        if not 0 <= index < self.steps:
            raise IndexError(f"batch {index} of {self.steps}")
        images, targets, weights = self.source.targets(*self._rows(int(index)))
        return (images, targets) if weights is None else (images, targets, weights)

    def on_epoch_end(self) -> None:
        """The next pass is the next epoch (fit()'s callback pins it again at its start)."""
        if self.training:
            self.clock.set(self.clock.peek() + 1)


def make_pydataset(
    table: pd.DataFrame,
    *,
    image_size: int,
    channels: int,
    batch_size: int,
    heads: Any = HEADS,
    training: bool,
    seed: int = 0,
    augmenter: Augmenter | None = None,
    cache: bool | str | os.PathLike = True,
    class_weights: Mapping[Any, float] | None = None,
    drop_remainder: bool = False,
    epoch_clock: EpochClock | None = None,
    check_files: bool = True,
    mixing: MixSettings | Mapping[str, Any] | None = None,
    n_classes: int = 8,
    workers: int | None = None,
    processes: int = 0,
) -> TableBatches:
    """make_dataset's batches for any Keras backend (same arguments, same batches).

    workers: threads that build batches (default: one per core, at most 8); with worker
    processes they only wait for them.
    """
    source = _prepare(
        table,
        image_size,
        channels,
        batch_size,
        heads,
        training,
        seed,
        augmenter,
        cache,
        class_weights,
        check_files,
        mixing,
        n_classes,
        processes,
    )
    if source.store.enabled:
        source.fill()
    return TableBatches(
        source,
        batch_size=int(batch_size),
        training=training,
        seed=int(seed),
        clock=epoch_clock or EpochClock(),
        drop_remainder=drop_remainder,
        workers=workers or max(1, min(8, os.cpu_count() or 1)),
    )


# --------------------------------------------------------------------------- for notebooks


def describe(dataset: tf.data.Dataset) -> pd.DataFrame:
    """One row per tensor in a batch (part, head, shape, dtype), to show what the model gets."""
    spec = dataset.element_spec
    parts = ("images", "targets", "sample_weights")
    rows = []
    for part, item in zip(parts, spec if isinstance(spec, tuple) else (spec,), strict=False):
        items = item.items() if isinstance(item, dict) else [("", item)]
        for name, s in items:
            rows.append(
                {"part": part, "name": name, "shape": str(tuple(s.shape)), "dtype": s.dtype.name}
            )
    rows_df = pd.DataFrame(rows, columns=["part", "name", "shape", "dtype"])
    rows_df.attrs["batches"] = int(dataset.cardinality())
    return rows_df


def benchmark(dataset: tf.data.Dataset, max_batches: int | None = None) -> dict[str, float]:
    """Images per second the input pipeline alone delivers, to tell it from model speed."""
    images, start = 0, time.perf_counter()
    for k, batch in enumerate(dataset):
        if max_batches is not None and k >= max_batches:
            break
        images += int(batch[0].shape[0])
    seconds = time.perf_counter() - start
    return {
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds if seconds > 0 else float("nan"),
    }
