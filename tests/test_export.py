"""TFLite export: float and int8 agree with Keras, outputs keep their names, the predictor runs it.

Tolerances. Float TFLite runs the same float32 graph: probabilities within 1e-4 (seen ~1e-8).
int8 (full-integer, int8 in/out): the softmax output has a step of 1/256, tanh 1/128, and each
quantised layer adds error, so probabilities within 0.03 and valence/arousal within 0.1 (seen
0.005 and 0.04). A random model's softmax is ~0.125 +- 1e-4 for every class, below that step,
so argmax agreement would be a coin toss; the fixture scales the heads by 100 (top-1 margins
>= 0.01, still random weights) and argmax must agree on 95% of the faces.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.core.errors import ConfigError, DataError
from helpers.core.labels import EXPRESSIONS, HEADS
from helpers.core.preprocess import to_model_input
from helpers.core.progress import PROGRESS_ENV
from helpers.data.synthetic import render_face, sample_face_params
from helpers.inference.deploy import compare_backends
from helpers.inference.export import export_tflite, sidecar_path
from helpers.inference.predict import predict_images
from helpers.inference.runtime import KerasModel, TFLiteModel
from helpers.models.factory import build_model, model_metadata

SIZE = 48
FLOAT_TOL = 1e-4
INT8_PROB_TOL = 0.03
INT8_VA_TOL = 0.1
INT8_LANDMARK_TOL = 0.03


def _faces(first: int, n: int, size: int = 64) -> np.ndarray:
    """Demo faces as training-like calibration and test images (raw 0-255 RGB)."""
    out = []
    for seed in range(first, first + n):
        rng = np.random.default_rng(seed)
        out.append(render_face(sample_face_params(rng, seed % len(EXPRESSIONS), size), size)[0])
    return np.stack(out)


@pytest.fixture(scope="module")
def keras_path(tmp_path_factory):
    model = build_model("custom_cnn", image_size=SIZE, channels=1)
    for head in ("expression", "valence", "arousal"):
        layer = model.get_layer(head)
        layer.kernel.assign(layer.kernel * 100.0)  # decided softmax: see the module docstring
    path = tmp_path_factory.mktemp("models") / "custom_cnn.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def keras_model(keras_path):
    from helpers.models.saving import load_trained

    return load_trained(keras_path)


@pytest.fixture(scope="module")
def test_batch():
    return np.stack([to_model_input(f, SIZE, 1) for f in _faces(1000, 40)])


@pytest.fixture(scope="module")
def float_path(keras_path, tmp_path_factory):
    return export_tflite(keras_path, tmp_path_factory.mktemp("tfl") / "custom_cnn.tflite")


@pytest.fixture(scope="module")
def int8_path(keras_model, tmp_path_factory):
    return export_tflite(
        keras_model,
        tmp_path_factory.mktemp("tfl") / "custom_cnn.int8.tflite",
        quantize="int8",
        calibration_images=_faces(0, 100),
    )


def test_sidecar_keeps_output_names_shapes_and_metadata(float_path, keras_model):
    side = json.loads(sidecar_path(float_path).read_text())
    assert sidecar_path(float_path).name == "custom_cnn.tflite.json"
    assert side["quantize"] is None and side["signature"] == "serving_default"
    assert side["input"]["shape"] == [-1, SIZE, SIZE, 1] and side["input"]["dtype"] == "float32"
    assert {k: v["shape"] for k, v in side["outputs"].items()} == {
        "expression": [-1, 8],
        "valence": [-1, 1],
        "arousal": [-1, 1],
        "landmarks": [-1, 136],
    }
    assert side["metadata"] == json.loads(json.dumps(model_metadata(keras_model)))
    assert side["source_model"].endswith("custom_cnn.keras")


@pytest.mark.parametrize("n", [1, 7, 40])
def test_float_tflite_matches_keras_at_any_batch_size(float_path, keras_model, test_batch, n):
    tflite = TFLiteModel(float_path)
    got = tflite(test_batch[:n])
    want = keras_model.predict_on_batch(test_batch[:n])
    assert list(got) == list(HEADS)
    for head in HEADS:
        assert got[head].shape == tuple(want[head].shape) and got[head].dtype == np.float32
        np.testing.assert_allclose(got[head], want[head], atol=FLOAT_TOL, err_msg=head)


def test_int8_tflite_agrees_with_keras_within_quantisation_error(
    int8_path, float_path, keras_model, test_batch
):
    tflite = TFLiteModel(int8_path)
    side = json.loads(sidecar_path(int8_path).read_text())
    assert side["input"]["dtype"] == "int8" and side["calibration_images"] == 100
    assert all(v["dtype"] == "int8" for v in side["outputs"].values())
    assert tflite.size_bytes < TFLiteModel(float_path).size_bytes / 2
    got, want = tflite(test_batch), keras_model.predict_on_batch(test_batch)
    np.testing.assert_allclose(got["expression"], want["expression"], atol=INT8_PROB_TOL)
    np.testing.assert_allclose(got["expression"].sum(1), 1.0, atol=INT8_PROB_TOL)
    for head in ("valence", "arousal"):
        np.testing.assert_allclose(got[head], want[head], atol=INT8_VA_TOL, err_msg=head)
    np.testing.assert_allclose(got["landmarks"], want["landmarks"], atol=INT8_LANDMARK_TOL)
    agreement = np.mean(got["expression"].argmax(1) == np.asarray(want["expression"]).argmax(1))
    assert agreement >= 0.95


def test_a_plain_interpreter_lists_the_outputs_by_head_name_in_keras_order(
    float_path, int8_path, keras_model
):
    """Without the sidecar, a deployer's get_output_details() still says which output is which,
    in the order the Keras model's predict gives its heads; the serving signature (the
    project's reader) and the sidecar name the same tensors."""
    from helpers.inference.export import interpreter

    for path in (float_path, int8_path):
        runtime = interpreter(path.read_bytes(), num_threads=1)
        details = runtime.get_output_details()
        assert [d["name"] for d in details] == model_metadata(keras_model)["heads"] == list(HEADS)
        by_signature = runtime.get_signature_runner("serving_default").get_output_details()
        assert {k: v["index"] for k, v in by_signature.items()} == {
            d["name"]: d["index"] for d in details
        }
        side = json.loads(sidecar_path(path).read_text())
        assert {k: v["index"] for k, v in side["outputs"].items()} == {
            d["name"]: d["index"] for d in details
        }


@pytest.mark.parametrize("quantize", [None, "int8"])
@pytest.mark.parametrize(
    "heads", [("expression",), ("valence", "arousal"), ("expression", "landmarks")]
)
def test_a_model_with_some_heads_lists_them_by_name_in_keras_order(tmp_path, heads, quantize):
    """Any set of heads comes out of get_output_details() named and in the Keras order, and
    the export checks it: no warning says the outputs kept TFLite's own names."""
    import warnings

    from helpers.inference.export import interpreter

    model = build_model("custom_cnn", image_size=32, channels=1, heads=heads)
    calibration = _faces(0, 8, size=32) if quantize else None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        path = export_tflite(
            model, tmp_path / "m.tflite", quantize=quantize, calibration_images=calibration
        )
    assert not [w for w in seen if "get_output_details()" in str(w.message)]
    details = interpreter(path.read_bytes(), num_threads=1).get_output_details()
    assert [d["name"] for d in details] == model_metadata(model)["heads"]


def test_an_export_whose_outputs_keep_tflites_names_says_so(tmp_path, monkeypatch):
    """When the outputs could not be renamed (a converter that lays them out otherwise), the
    export says so in one warning rather than leaving README's promise silently broken."""
    from helpers.inference import export

    monkeypatch.setattr(export, "_named_outputs", lambda content, heads: content)
    model = build_model("custom_cnn", image_size=32, channels=1, heads=("valence", "arousal"))
    with pytest.warns(UserWarning, match=r"^m\.tflite: get_output_details\(\) lists the outputs"):
        export_tflite(model, tmp_path / "m.tflite")


def test_loading_leaves_out_the_interpreters_deprecation_warning_alone(float_path, monkeypatch):
    """TensorFlow's interpreter warns on every load that it moves to LiteRT: the project's
    reader leaves that warning out, and only that one."""
    import sys
    import types
    import warnings

    from helpers.inference.export import interpreter

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        TFLiteModel(float_path)
    assert [str(w.message) for w in seen] == []

    class Interpreter:
        """An interpreter that warns as TF's does, and of something else."""

        def __init__(self, **kwargs):
            deprecated = "    Warning: tf.lite.Interpreter is deprecated and is ..."
            warnings.warn(deprecated, UserWarning, stacklevel=2)
            warnings.warn("delegate unavailable: running on the CPU", UserWarning, stacklevel=2)

        def allocate_tensors(self):
            pass

    module = types.ModuleType("ai_edge_litert.interpreter")
    module.Interpreter = Interpreter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert", types.ModuleType("ai_edge_litert"))
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", module)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        interpreter(b"", num_threads=1)
    assert [str(w.message) for w in seen] == ["delegate unavailable: running on the CPU"]


def _readme_deploy_snippet() -> str:
    """The Python block of README's "Deploying the TFLite files"."""
    from helpers.core import paths

    text = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Deploying the TFLite files", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
@pytest.mark.parametrize("kind", ["float", "int8"])
def test_the_readme_deploy_snippet_reads_an_export_as_the_project_does(float_path, int8_path, kind):
    """The README's plain-interpreter code, run on a tiny export, gives every head as the
    project's own reader does, and the face it names."""
    path = {"float": float_path, "int8": int8_path}[kind]
    snippet = _readme_deploy_snippet()
    example = '"reports/20261207-133001/export/custom_cnn.int8.tflite"'
    blank = "np.zeros((size, size, channels), np.float32)"
    assert example in snippet and blank in snippet
    face = to_model_input(_faces(3000, 1)[0], SIZE, 1)
    namespace: dict = {"face_given": face}
    exec(snippet.replace(example, repr(str(path))).replace(blank, "face_given"), namespace)
    want = TFLiteModel(path)(face[None])
    assert set(namespace["out"]) == set(HEADS)
    for head in HEADS:
        np.testing.assert_allclose(namespace["out"][head], want[head], atol=1e-6, err_msg=head)
    labels = json.loads(sidecar_path(path).read_text())["metadata"]["labels"]
    assert namespace["label"] == labels[int(want["expression"][0].argmax())]
    np.testing.assert_allclose(namespace["points"], want["landmarks"].reshape(68, 2) * SIZE)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_the_readme_deploy_snippet_runs_on_a_model_without_landmarks(tmp_path):
    """The snippet reads the input by the sidecar's name and the landmarks only where the
    model has them: an expression-only export runs through it."""
    model = build_model("custom_cnn", image_size=32, channels=1, heads=("expression",))
    path = export_tflite(model, tmp_path / "expression_only.tflite")
    snippet = _readme_deploy_snippet()
    example = '"reports/20261207-133001/export/custom_cnn.int8.tflite"'
    namespace: dict = {}
    exec(snippet.replace(example, repr(str(path))), namespace)
    assert set(namespace["out"]) == {"expression"} and "points" not in namespace
    want = TFLiteModel(path)(np.zeros((1, 32, 32, 1), np.float32))["expression"]
    assert namespace["label"] == EXPRESSIONS[int(want[0].argmax())]


def test_compare_backends_reports_differences_and_latency(keras_model, int8_path, test_batch):
    report = compare_backends(keras_model, int8_path, test_batch[:16], batch_size=8, n_single=4)
    assert report["n"] == 16 and report["n_single"] == 4 and report["quantize"] == "int8"
    assert 0 <= report["expression"]["max_abs_diff"] <= INT8_PROB_TOL
    assert report["expression"]["mean_abs_diff"] <= report["expression"]["max_abs_diff"]
    assert report["expression"]["argmax_agreement"] >= 0.9
    assert report["expression"]["n_decided"] == 16  # margins >= 0.01 > 2/256
    assert report["expression"]["decided_argmax_agreement"] >= 0.9
    assert set(report) >= set(HEADS)
    for backend in ("keras", "tflite"):
        timing = report["latency"][backend]
        assert timing["batched_ms"] > 0 and timing["single_ms"] > 0 and timing["images_per_s"] > 0


def test_predict_images_runs_the_tflite_backend(keras_model, float_path, tmp_path):
    images = list(_faces(2000, 3, size=96))
    from_keras = predict_images(keras_model, images, detect=False, progress=False)
    from_file = predict_images(float_path, images, detect=False, progress=False)
    in_memory = predict_images(keras_model, images, detect=False, backend="tflite", progress=False)
    for table in (from_file, in_memory):
        assert list(table["expression"]) == list(from_keras["expression"])
        probs = [c for c in table if c.startswith("p_")]
        np.testing.assert_allclose(
            table[probs].to_numpy(float), from_keras[probs].to_numpy(float), atol=FLOAT_TOL
        )
        np.testing.assert_allclose(
            np.stack(table["landmarks"].map(np.asarray)),
            np.stack(from_keras["landmarks"].map(np.asarray)),
            atol=0.02,
        )


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_mixed_precision_model_exports_in_float32(tmp_path, policy):
    import keras

    keras.config.set_dtype_policy(policy)
    try:
        model = build_model("custom_cnn", image_size=32, channels=1, heads=("expression",))
    finally:
        keras.config.set_dtype_policy("float32")
    path = export_tflite(model, tmp_path / "mixed.tflite")
    assert json.loads(sidecar_path(path).read_text())["input"]["dtype"] == "float32"
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(
        TFLiteModel(path)(x)["expression"],
        model.predict_on_batch(x)["expression"],
        atol=2e-2 if policy == "mixed_bfloat16" else 1e-3,  # the Keras model's 16-bit steps
    )


@pytest.mark.parametrize("standardize", [False, True])
def test_a_model_trained_on_crops_exports_its_centre_window(tmp_path, standardize):
    """train_crop's inference gather converts: TFLite sees the centre window as Keras does, and
    standardize's per-face moments with it."""
    model = build_model(
        "custom_cnn",
        image_size=48,
        channels=1,
        heads=("expression",),
        backbone_options={"train_crop": 44, "standardize": standardize},
    )
    path = export_tflite(model, tmp_path / "cropped.tflite")
    x = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(
        TFLiteModel(path)(x)["expression"], model.predict_on_batch(x)["expression"], atol=1e-4
    )


def test_calibration_accepts_image_paths(tmp_path):
    from PIL import Image

    from helpers.inference.export import _calibration_inputs

    paths = []
    for i, face in enumerate(_faces(0, 3)):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(face).save(paths[-1])
    prepared = _calibration_inputs(paths, 2, SIZE, 1)
    assert len(prepared) == 2 and prepared[0].shape == (SIZE, SIZE, 1)
    spread = _calibration_inputs(np.zeros((10, 30, 30, 3), np.uint8), 4, SIZE, 3)
    assert len(spread) == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"quantize": "fp16"},
        {"quantize": "int8"},
        {"quantize": "int8", "calibration_images": []},
        {"n_calibration": 0},
    ],
)
def test_bad_export_settings_raise_config_error(keras_model, tmp_path, kwargs):
    with pytest.raises(ConfigError):
        export_tflite(keras_model, tmp_path / "m.tflite", **kwargs)
    assert not (tmp_path / "m.tflite").exists()


def test_missing_or_damaged_files_raise_data_error_naming_them(float_path, tmp_path):
    with pytest.raises(DataError, match="not found"):
        TFLiteModel(tmp_path / "absent.tflite")
    alone = tmp_path / "alone.tflite"
    alone.write_bytes(float_path.read_bytes())
    with pytest.raises(DataError, match="sidecar") as caught:
        TFLiteModel(alone)
    assert caught.value.path == str(sidecar_path(alone))
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    sidecar_path(garbage).write_text(sidecar_path(float_path).read_text())
    with pytest.raises(DataError) as caught:
        TFLiteModel(garbage)
    assert caught.value.path == str(garbage)
    sidecar_path(garbage).write_text("{")
    with pytest.raises(DataError, match="damaged sidecar"):
        TFLiteModel(garbage)
    with pytest.raises(DataError, match="model file not found"):
        export_tflite(tmp_path / "absent.keras", tmp_path / "x.tflite")


def _counted(call, calls, name):
    """A backend's __call__ that counts its calls under `name`."""

    def counting(self, images):
        calls[name] += 1
        return call(self, images)

    return counting


def test_deployment_check_reports_accuracy_change_latency_and_size(tmp_path, monkeypatch):
    """The numbers notebook 05 writes and the report shows: per TFLite flavour, vs Keras."""
    import cv2
    import pandas as pd

    from helpers.inference.deploy import deployment_check, deployment_table
    from helpers.models.factory import build_model

    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        path = tmp_path / f"im{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (40, 40), dtype=np.uint8))
        rows.append({"id": str(i), "image": str(path), "expression": i % 8})
    table = pd.DataFrame(rows)
    model = build_model("custom_cnn", image_size=32, channels=1, heads=("expression",))
    exports = []
    original = type(model).export

    def counting_export(self, *args, **kwargs):
        exports.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "export", counting_export)
    calls = {"KerasModel": 0, "TFLiteModel": 0}
    for backend in (KerasModel, TFLiteModel):
        monkeypatch.setattr(
            backend, "__call__", _counted(backend.__call__, calls, backend.__name__)
        )
    monkeypatch.setenv(PROGRESS_ENV, str(tmp_path / "lines"))
    result = deployment_check(
        model, "tiny", table, table, tmp_path / "run" / "export", n_calibration=8, max_images=10
    )
    # said as it starts, with what it exports and how to turn it off: minutes for a backbone
    (started,) = (tmp_path / "lines").read_text().splitlines()
    assert started.startswith("tiny: exporting TFLite (float, and int8 calibrated on 8 training")
    assert "timing each on 10 test faces" in started and "export_tflite=False" in started
    assert len(exports) == 1  # one SavedModel serves both conversions
    # Keras runs over the images once, for its accuracy, latency and both comparisons; each
    # TFLite file once: the two files together call as often as Keras twice
    assert calls["KerasModel"] > 0 and calls["TFLiteModel"] == 2 * calls["KerasModel"]
    assert result["n"] == 10
    for kind in ("tflite_float", "tflite_int8"):
        entry = result[kind]
        assert (tmp_path / "run" / "export" / entry["file"]).is_file()
        assert -1 <= entry["accuracy_change"] <= 1 and entry["latency"]["single_ms"] > 0
    assert abs(result["tflite_float"]["accuracy_change"]) < 1e-9  # float export is exact
    board = deployment_table(tmp_path / "run")
    assert list(board["model"]) == ["tiny"] and board.loc[0, "int8_MB"] < board.loc[0, "float_MB"]
    assert board.loc[0, "n"] == 10  # the report says how many images the accuracies stand on


def test_a_shared_saved_model_converts_to_the_same_file(keras_model, float_path, tmp_path):
    """Converting from one SavedModel (as deployment_check does) changes nothing in the file."""
    from helpers.inference.export import saved_model

    with saved_model(keras_model) as saved:
        again = export_tflite(keras_model, tmp_path / "again.tflite", saved=saved)
    assert again.read_bytes() == float_path.read_bytes()


def test_export_and_the_interpreter_print_nothing(keras_model, tmp_path, capfd):
    """The converter's and the interpreter's INFO lines (C++ logging on descriptor 2, Python
    logging) stay out of the notebook and the terminal."""
    path = export_tflite(
        keras_model,
        tmp_path / "quiet.int8.tflite",
        quantize="int8",
        calibration_images=_faces(0, 4),
        n_calibration=4,
    )
    TFLiteModel(path)(np.zeros((1, SIZE, SIZE, 1), np.float32))
    out, err = capfd.readouterr()
    for notice in ("fully_quantize", "XNNPACK", "Assets written"):
        assert notice not in out + err
