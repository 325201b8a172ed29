"""Loading a model: .keras files load in Keras safe mode, so a file from elsewhere cannot run
code; a missing, damaged, tampered or foreign file is a DataError naming it."""

from __future__ import annotations

import zipfile

import keras
import pytest

from helpers.core.errors import DataError
from helpers.models import saving
from helpers.models.factory import build_model


def rezip(src, dst, replace: dict[str, bytes]) -> None:
    """Copy a .keras archive, swapping some members' bytes (a tampered download)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info)))


def test_model_files(tmp_path, untouched):
    good = tmp_path / "custom_cnn.keras"
    build_model("custom_cnn", image_size=32, heads=("expression",)).save(good)
    sentinel = tmp_path / "code_ran"
    # A foreign model whose Lambda layer creates a file whenever Keras calls it.
    evil, where = tmp_path / "evil.keras", str(sentinel)
    keras.Sequential(
        [keras.Input((4,)), keras.layers.Lambda(lambda x: (open(where, "w").close(), x * 2)[1])]
    ).save(evil)
    sentinel.unlink()
    keras.saving.load_model(evil, safe_mode=False)  # the payload is real when trusted ...
    assert sentinel.exists()
    sentinel.unlink()
    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(plain)
    data = good.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.keras").write_text("<html>model moved</html>")
    (tmp_path / "model.h5").write_bytes(data)
    rezip(good, tmp_path / "weights.keras", {"model.weights.h5": b"\x89HDF\r\n junk"})
    rezip(good, tmp_path / "config.keras", {"config.json": b'{"class_name": "Nope"'})
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(tmp_path / "bomb.keras", "w") as zout:
        for info in zin.infolist():  # the weights inflate 1000-fold: refused before Keras reads
            data = bytes(16 << 20) if info.filename == "model.weights.h5" else zin.read(info)
            zout.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)

    assert saving.load_trained(good).name == "custom_cnn"
    cases = {
        "evil.keras": "Lambda",  # ... but refused here
        "plain.keras": "not a model built by helpers.models.factory",
        "cut.keras": "not a Keras .keras model file",
        "text.keras": "not a Keras .keras model file",
        "model.h5": "not a Keras .keras model file",
        "weights.keras": "cannot load the model",
        "config.keras": "cannot load the model",
        "bomb.keras": "compression ratio .* exceeds the limit",
        "missing.keras": "model file not found",
    }
    with untouched():
        for name, problem in cases.items():
            with pytest.raises(DataError, match=problem) as err:
                saving.load_trained(tmp_path / name)
            assert err.value.path == str(tmp_path / name)
            assert "\n" not in str(err.value), name  # one readable line, not a Keras dump
    assert not sentinel.exists()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A float TFLite export and its sidecar, as export_tflite writes them."""
    from helpers.inference.export import export_tflite

    folder = tmp_path_factory.mktemp("tflite")
    model = build_model("custom_cnn", image_size=32, channels=1, heads=("expression", "valence"))
    return export_tflite(model, folder / "m.tflite")


def _tamper(side: dict, path: str, value) -> dict:
    """A copy of the sidecar with one field (dotted path) replaced, or removed for ...."""
    import copy

    side = copy.deepcopy(side)
    *parents, last = path.split(".")
    node = side
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return side


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("metadata.heads", ..., "metadata.heads must list heads"),
        ("metadata.heads", ["expression", "smile"], "metadata.heads must list heads"),
        ("input.name", ..., "input.name must be the input's name"),
        ("metadata.image_size", "abc", "metadata.image_size must be a positive integer"),
        ("metadata.image_size", 48, "metadata says input 48x48x1, but m.tflite takes [32, 32, 1]"),
        ("metadata.channels", 3, "metadata says input 32x32x3"),
        ("outputs", ..., "outputs is missing"),
        ("input.dtype", "float99", "input.dtype is not a numeric type name"),
        ("metadata", [], "metadata is missing or not an object"),
    ],
)
def test_tflite_sidecar_fields(exported, tmp_path, untouched, field, value, message):
    import json
    import shutil

    from helpers.inference.export import sidecar_path
    from helpers.inference.runtime import TFLiteModel

    model = tmp_path / "m.tflite"
    shutil.copy(exported, model)
    side = json.loads(sidecar_path(exported).read_text())
    sidecar_path(model).write_text(json.dumps(_tamper(side, field, value)))
    with untouched(), pytest.raises(DataError, match=r"m\.tflite\.json") as caught:
        TFLiteModel(model)
    assert message in str(caught.value)
    sidecar_path(model).write_text(json.dumps(side))
    assert TFLiteModel(model).metadata["heads"] == ["expression", "valence"]


def test_the_model_itself_says_its_input_not_a_card_beside_it(tmp_path):
    """A card (or a file name) that disagrees with the model is not what the predictor trusts."""
    import json

    import numpy as np
    from PIL import Image

    from helpers.inference.predict import predict_images

    path = tmp_path / "models" / "custom_cnn.keras"
    path.parent.mkdir()
    build_model("custom_cnn", image_size=32, channels=1, heads=("expression",), n_classes=7).save(
        path
    )
    card = {"parameters": {"image_size": 96, "channels": 3}, "architecture": {"n_classes": 8}}
    (tmp_path / "models" / "custom_cnn.json").write_text(json.dumps(card))
    face = tmp_path / "face.png"
    Image.fromarray(np.full((60, 60, 3), 128, np.uint8)).save(face)
    rows = predict_images(path, [face], detect=False, progress=False)
    assert rows["status"].tolist() == ["ok"]
    assert len([c for c in rows.columns if c.startswith("p_")]) == 7  # the model's 7 classes
