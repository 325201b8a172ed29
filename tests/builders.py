"""Test inputs built in code, shared by every test folder: AffectNet-layout zips (well formed or
hostile), npy payloads, images, and listings that prove nothing else on disk changed."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = "Dataset/Dataset"
CENTRAL = b"PK\x01\x02"
USIZE, CSIZE, OFFSET = 24, 20, 42  # central directory header field offsets


# ---- bytes of things --------------------------------------------------------------------


def npy(value: object) -> bytes:
    """.npy bytes exactly as np.save writes them (object arrays pickled, like a hostile file)."""
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=True)
    return buf.getvalue()


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    """An image as file bytes in the given format."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(shade: int = 128, size: int = 12) -> bytes:
    """A small real JPEG."""
    return encode(Image.new("RGB", (size, size), (shade, 255 - shade, 40)), "JPEG")


def png(shade: int = 90, size: int = 8) -> bytes:
    """A small real PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size), shade, np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def faces(*folders: str, each: int = 2) -> dict[str, bytes]:
    """`each` images in every folder."""
    return {f"{folder}/{k}.png": png(10 * k) for folder in folders for k in range(each)}


def noisy_jpeg(size: int = 48, seed: int = 0) -> bytes:
    """A JPEG big enough that cutting it in half leaves scan data missing."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels), "JPEG")


def record(
    ident: str,
    exp: object = "3",
    val: object = "-0.25",
    aro: object = "0.5",
    lnd: object = None,
    image: bytes | bool | None = None,
    root: str = ROOT,
) -> dict[str, bytes]:
    """Members of one AffectNet record; None leaves a file out, bytes are stored as given."""
    members: dict[str, bytes] = {}
    base = f"{root}/" if root else ""
    if image is not False:
        members[f"{base}images/{ident}.jpg"] = jpeg() if image is None else image
    for kind, value in (("exp", exp), ("val", val), ("aro", aro), ("lnd", lnd)):
        if value is None:
            continue
        data = (
            value
            if isinstance(value, bytes)
            else npy(np.array(value) if isinstance(value, str) else value)
        )
        members[f"{base}annotations/{ident}_{kind}.npy"] = data
    return members


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    """Files under a folder (a dataset laid out on disk, as a zip would hold it)."""
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def write_zip(
    path: Path, *parts: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    """A zip holding the members of every dict, in order."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for members in parts:
            for name, data in members.items():
                zf.writestr(name, data)
    return path


def patch_central(path: Path, index: int, field_offset: int, value: int) -> None:
    """Forge one 4-byte field of the index-th central directory header."""
    data = bytearray(path.read_bytes())
    entries, pos = [], data.find(CENTRAL)
    while pos >= 0:
        entries.append(pos)
        pos = data.find(CENTRAL, pos + 4)
    at = entries[index] + field_offset
    data[at : at + 4] = struct.pack("<I", value)
    path.write_bytes(bytes(data))


# ---- nothing else on disk changes -------------------------------------------------------


def listing(root: Path, skip: Iterable[Path] = ()) -> dict[str, tuple[int, int]]:
    """Every file and folder under root with (size, mtime) for files, leaving out the skipped
    folders; folder mtimes are ignored (additions and removals show up as names)."""
    skipped = [Path(s).resolve() for s in skip]
    out: dict[str, tuple[int, int]] = {}
    for p in sorted(root.rglob("*")):
        real = p.resolve()
        if any(real == s or s in real.parents for s in skipped):
            continue
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (0, 0) if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


# ---- notebooks cell by cell -------------------------------------------------------------


def run_cells(notebook: str, cells: Iterable[int], **parameters: object) -> dict[str, object]:
    """Run a notebook's parameters cell, the `parameters` given over it (as a person edits it),
    then its code cells `cells` in order, in one namespace, in notebooks/ (the kernel's folder),
    as a kernel runs them cell by cell; the namespace comes back."""
    import contextlib

    import nbformat

    from helpers.core import paths

    nb = nbformat.read(paths.NOTEBOOKS_DIR / f"{notebook}.ipynb", as_version=4)
    namespace: dict[str, object] = {}
    with contextlib.chdir(paths.NOTEBOOKS_DIR):
        exec(nb.cells[1].source, namespace)
        namespace.update(parameters)
        for index in cells:
            assert nb.cells[index].cell_type == "code", (notebook, index)
            exec(nb.cells[index].source, namespace)
    return namespace
