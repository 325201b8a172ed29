"""Fuzz: random bytes, random small archives (traversal names, npy payloads of any dtype,
pickles, images whole and mangled) and mutated real archives thrown at every entry point.
Whatever comes in, only DataError or ConfigError may come out. Derandomized, so CI is stable."""

from __future__ import annotations

import io
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from builders import ROOT, encode, npy, record, write_zip
from helpers.core.archive import open_zip
from helpers.core.errors import ConfigError, DataError
from helpers.core.images import close_archives, decode_image, read_image
from helpers.data.datasets import read_source
from helpers.data.datasets.affectnet import read_affectnet_zip

EXPECTED = (DataError, ConfigError)
# Mangled images make Pillow warn (corrupt EXIF, truncated tags); the answers are what count.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def fuzz_settings(n: int) -> settings:
    """Bounded, reproducible runs that write no example database."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


IMAGES = [
    encode(Image.new(mode, (9, 7), color), fmt)
    for mode, color, fmt in (
        ("RGB", (9, 99, 199), "JPEG"),
        ("RGBA", (1, 2, 3, 4), "PNG"),
        ("P", 5, "GIF"),
        ("L", 77, "BMP"),
        ("RGB", (5, 6, 7), "TIFF"),
        ("RGB", (1, 2, 3), "WEBP"),
        ("CMYK", (0, 0, 0, 9), "JPEG"),
    )
]
MAGIC = [
    b"",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x93NUMPY\x01\x00",
    b"\xff\xd8\xff\xe0",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"II*\x00",
    b"BM",
    b"RIFF\x00\x00\x00\x00WEBP",
    b"\x80\x04",
    b"emotion,pixels\n",
    b"image,label\n",
]


@st.composite
def mangled(draw, sources: list[bytes]) -> bytes:
    """One of the given files with a few bytes overwritten and maybe the end cut off."""
    data = bytearray(draw(st.sampled_from(sources)))
    for _ in range(draw(st.integers(0, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


random_bytes = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda magic, rest: magic + rest, st.sampled_from(MAGIC), st.binary(max_size=400)),
    mangled(IMAGES),
)

arrays = hnp.arrays(
    dtype=st.one_of(
        hnp.scalar_dtypes(), hnp.byte_string_dtypes(max_len=4), hnp.unicode_string_dtypes(max_len=4)
    ),
    shape=st.one_of(
        st.just(()), st.just((136,)), st.just((68, 2)), hnp.array_shapes(max_dims=2, max_side=5)
    ),
)
payloads = st.one_of(
    arrays.map(npy),
    st.sampled_from(["3", "-2", "7", "0.5", "-1.5", "nan", "inf", "1e400", " 4 ", ""]).map(
        lambda text: npy(np.array(text))
    ),
    st.just(npy(np.array([{"pickled": True}], dtype=object))),
    st.just(pickle.dumps(3)),
    st.sampled_from(IMAGES),
    mangled(IMAGES),
    st.binary(max_size=200),
)
idents = st.sampled_from(["1", "2", "10", "a b", "日本", "x!y"])
exp_texts = st.sampled_from(["3", "0", "7", "-2", "8", "2.5", "nan", " 4 ", "", "x"])
affect_texts = st.sampled_from(["0.5", "-1", "1", "-1.5", "nan", "inf", "1e400", "y"])
images = st.one_of(st.sampled_from(IMAGES), mangled(IMAGES), st.binary(max_size=64))
annotations = {
    "exp": st.one_of(exp_texts.map(lambda t: npy(np.array(t))), payloads),
    "val": st.one_of(affect_texts.map(lambda t: npy(np.array(t))), payloads),
    "aro": st.one_of(affect_texts.map(lambda t: npy(np.array(t))), payloads),
    "lnd": st.one_of(st.just(npy(np.arange(136.0))), payloads),
}
names = st.one_of(
    st.builds(
        lambda split, cls, i: f"{split}/{cls}/{i}.png",
        st.sampled_from(["train", "test"]),
        st.sampled_from(["happy", "sad", "angry", "Fear", "bored"]),
        idents,
    ),
    st.sampled_from(
        [
            "../evil.jpg",
            "/abs/x.jpg",
            "C:/x.jpg",
            "a\\..\\..\\b",
            "fer2013.csv",
            "faces.csv",
            "__MACOSX/._1.jpg",
            f"{ROOT}/images/",
            ".DS_Store",
            f"{ROOT}/images/1.jpg",
            f"{ROOT}/annotations/1_EXP.npy",
        ]
    ),
    st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
)


@st.composite
def archives(draw) -> list[tuple[str, bytes]]:
    """AffectNet-shaped records with any payloads, plus a few members of any name."""
    root = draw(st.sampled_from([f"{ROOT}/", "", "set/train_set/", "set/val_set/"]))
    members: dict[str, bytes] = {}
    for ident in draw(st.lists(idents, max_size=3, unique=True)):
        if draw(st.integers(0, 3)):  # mostly with an image
            members[f"{root}images/{ident}.jpg"] = draw(images)
        for kind in sorted(draw(st.sets(st.sampled_from(sorted(annotations)), min_size=1))):
            members[f"{root}annotations/{ident}_{kind}.npy"] = draw(annotations[kind])
    extras = draw(st.lists(st.tuples(names, payloads), max_size=2))
    return list(members.items()) + extras


# The records table names the rows it refuses: from a reader, that is one bad record sinking
# the whole source, which a reader must instead drop (or blank) and count.
SUNK = ("bad rows", "in rows:")


def only_expected(call) -> None:
    """Run one entry point; a DataError or ConfigError is a fine answer, anything else fails,
    and so does a refusal that names rows (the reader let a bad record through)."""
    try:
        call()
    except EXPECTED as error:
        assert not any(s in str(error) for s in SUNK), f"one record sank the source: {error}"


def through_every_reader(path: Path) -> None:
    """Detection, the AffectNet reader, the zip opener, and decoding of every record made."""
    only_expected(lambda: open_zip(path).close())
    only_expected(lambda: read_affectnet_zip(path, progress=False))
    try:
        result = read_source(path, progress=False)
    except EXPECTED as error:
        assert not any(s in str(error) for s in SUNK), f"one record sank the source: {error}"
        return
    for uri in result.records["image"]:
        only_expected(lambda uri=uri: read_image(uri, mode="rgb"))


@fuzz_settings(50)
@given(
    data=random_bytes,
    name=st.sampled_from(["x.zip", "x.jpg", "x.csv", "fer2013.csv", "label.lst", "x.npy", "x"]),
)
def test_random_bytes(data, name):
    only_expected(lambda: decode_image(data, name))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        through_every_reader(path)
        close_archives()


@fuzz_settings(100)
@given(members=archives(), stored=st.booleans())
def test_random_archives(members, stored):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.zip"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we want
            with zipfile.ZipFile(
                path, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            ) as zf:
                for name, data in members:
                    zf.writestr(name, data)
        through_every_reader(path)
        close_archives()


def _valid_archive() -> bytes:
    """A small, sound AffectNet zip to mutate."""
    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as folder:
        path = write_zip(
            Path(folder) / "a.zip",
            *[record(str(i), lnd=np.arange(136.0)) for i in range(3)],
            compression=zipfile.ZIP_STORED,
        )
        buf.write(path.read_bytes())
    return buf.getvalue()


VALID = _valid_archive()


@fuzz_settings(50)
@given(data=mangled([VALID]))
def test_mutated_archives(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mutated.zip"
        path.write_bytes(data)
        through_every_reader(path)
        close_archives()


# --------------------------------------------------------------------------- tables

FACE = " ".join(["128"] * 48 * 48)
cells = st.sampled_from(
    [
        "3",
        "0",
        "7",
        "-1",
        "\u00b2",
        "\u0663",
        "1" * 23,
        "2.5",
        "nan",
        "",
        " 4 ",
        "happy",
        "Training",
        "PublicTest",
        "x",
        "\x00",
        '"',
        "1e400",
    ]
)
pixel_strings = st.one_of(
    st.just(FACE),
    st.builds(
        lambda token, at: " ".join(["128"] * at + [token] + ["128"] * (48 * 48 - 1 - at)),
        cells,
        st.integers(0, 48 * 48 - 1),
    ),
    st.builds(lambda n: " ".join(["1"] * n), st.integers(0, 3000)),
    st.text(max_size=30),
)
fer_rows = st.lists(st.tuples(cells, pixel_strings, cells), min_size=0, max_size=4)
box_rows = st.lists(
    st.tuples(
        st.sampled_from(["image/p.png", "image/none.png", "../p.png", ""]),
        cells,
        cells,
        cells,
        cells,
        cells,
    ),
    max_size=4,
)
lst_lines = st.lists(st.lists(cells, min_size=0, max_size=9), max_size=4)


def through_table_readers(name: str, lines: list[str], reader: str) -> None:
    """Write the table beside image/p.png (as users keep them), read it with the named reader
    and by detection; every face a reader returns must decode."""
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as cache:
        (Path(folder) / "image").mkdir()
        Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(Path(folder) / "image" / "p.png")
        path = Path(folder) / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for kw in ({"reader": reader}, {}):
            try:
                result = read_source(path, progress=False, cache_dir=cache, **kw)
            except EXPECTED as error:
                assert not any(s in str(error) for s in SUNK), f"one row sank the table: {error}"
                continue
            for uri in result.records["image"]:
                only_expected(lambda uri=uri: read_image(uri, mode="rgb"))


@fuzz_settings(40)
@given(rows=fer_rows, usage=st.booleans())
def test_random_fer_csvs(rows, usage):
    header = "emotion,pixels" + (",Usage" if usage else "")
    lines = [header] + [",".join([e, p] + ([u] if usage else [])) for e, p, u in rows]
    through_table_readers("fer2013.csv", lines, "fer2013_csv")


@fuzz_settings(40)
@given(rows=box_rows)
def test_random_box_csvs(rows):
    lines = ["image,label,x,y,w,h"] + [",".join(r) for r in rows]
    through_table_readers("faces.csv", lines, "csv_boxes")


@fuzz_settings(40)
@given(lines=lst_lines)
def test_random_label_lists(lines):
    through_table_readers("label.lst", [" ".join(["p.png", *f]) for f in lines], "expw")


# --------------------------------------------------------------------------- TFLite sidecars


@pytest.fixture(scope="module")
def exported_tflite(tmp_path_factory):
    """A float TFLite export and its sidecar JSON (as text), to mutate."""
    from helpers.inference.export import export_tflite, sidecar_path
    from helpers.models.factory import build_model

    folder = tmp_path_factory.mktemp("tflite")
    path = export_tflite(
        build_model("custom_cnn", image_size=32, channels=1, heads=("expression", "arousal")),
        folder / "m.tflite",
    )
    return path, sidecar_path(path).read_text()


def _fields(node, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, node
    items = (
        node.items()
        if isinstance(node, dict)
        else (enumerate(node) if isinstance(node, list) else ())
    )
    for key, value in items:
        yield from _fields(value, (*prefix, key))


odd_values = st.sampled_from(
    [None, "abc", -1, 0, 1e300, [], {}, True, "float99", "image", ["smile"], 48, 3]
)


@fuzz_settings(40)
@given(choice=st.integers(0, 10_000), value=odd_values, drop=st.booleans())
def test_random_tflite_sidecars(exported_tflite, choice, value, drop):
    import json

    from helpers.inference.export import sidecar_path
    from helpers.inference.runtime import TFLiteModel

    original, text = exported_tflite
    side = json.loads(text)
    paths = [p for p, _ in _fields(side) if p]
    *parents, last = paths[choice % len(paths)]
    node = side
    for key in parents:
        node = node[key]
    if drop and isinstance(node, dict):
        del node[last]
    else:
        node[last] = value
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.tflite"
        path.write_bytes(original.read_bytes())
        sidecar_path(path).write_text(json.dumps(side))
        try:
            model = TFLiteModel(path)
        except EXPECTED:
            return
        size, channels = model.metadata["image_size"], model.metadata["channels"]
        only_expected(lambda: model(np.zeros((1, size, size, channels), np.float32)))
