"""The model factory: every name builds alike, preprocessing lives inside, weights never hang."""

from __future__ import annotations

import logging
import socket
import urllib.request
import warnings

import keras
import numpy as np
import pytest

from helpers.core.errors import ConfigError, DataError
from helpers.core.labels import EXPRESSIONS, HEADS
from helpers.models import factory, registry
from helpers.models.backbones import (
    SCRATCH_BN_MOMENTUM,
    FusedBatchNormalization,
    prepare_from_scratch,
    preprocessing_gain,
    with_norm,
)
from helpers.models.factory import build_model, model_metadata
from helpers.models.losses import build_losses
from helpers.models.registry import ModelSpec
from helpers.models.saving import load_trained
from helpers.models.transfer import set_transfer_mode, transfer_mode
from helpers.train.config import TrainConfig
from helpers.train.fit import _build, dtype_policy

NAMES = registry.list_models()


def _pixels(n: int, size: int, channels: int, seed: int = 0) -> np.ndarray:
    """Raw 0-255 float images, as users feed them."""
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, channels)).astype("float32")


def _same_weights(a: keras.Model | keras.layers.Layer, b: keras.Model | keras.layers.Layer) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=False))


def test_registry_has_the_required_models():
    assert {"custom_cnn", "vgg16", "resnet50", "mobilenetv2"} <= set(NAMES)


@pytest.mark.parametrize("size,channels", [(48, 1), (64, 3)])
@pytest.mark.parametrize("name", NAMES)
def test_every_model_builds_with_every_head(name, size, channels):
    model = build_model(name, image_size=size, channels=channels)
    out = model(_pixels(2, size, channels))
    assert model.input_shape == (None, size, size, channels)
    assert set(out) == set(HEADS)
    assert tuple(out["expression"].shape) == (2, len(EXPRESSIONS))
    assert tuple(out["valence"].shape) == (2, 1) and tuple(out["arousal"].shape) == (2, 1)
    assert tuple(out["landmarks"].shape) == (2, 136)
    np.testing.assert_allclose(np.sum(out["expression"], axis=1), 1.0, rtol=1e-5)
    assert np.all(np.abs(out["valence"]) <= 1) and np.all(np.abs(out["arousal"]) <= 1)
    assert np.all((np.asarray(out["landmarks"]) >= 0) & (np.asarray(out["landmarks"]) <= 1))


@pytest.mark.parametrize("heads", [("expression",), ("valence", "landmarks"), ("arousal",)])
def test_heads_switch_off(heads):
    model = build_model("custom_cnn", image_size=32, channels=1, heads=heads)
    assert set(model(_pixels(1, 32, 1))) == set(heads)
    assert model_metadata(model)["heads"] == [h for h in HEADS if h in heads]


def test_flatten_pooling_lets_the_head_see_where_a_feature_is():
    avg = build_model("custom_cnn", image_size=48, channels=1, heads=("expression",), seed=3)
    flat = build_model(
        "custom_cnn", image_size=48, channels=1, heads=("expression",), seed=3, pooling="flatten"
    )
    # 48 px after four 2x2 poolings: a 3x3 map of 256 channels, every position its own input.
    assert flat.get_layer("shared").kernel.shape == (3 * 3 * 256, 256)
    assert avg.get_layer("shared").kernel.shape == (256, 256)
    # A feature map and the same map with its positions swapped: one vector to averaging, two
    # different ones to the flattened head.
    features = np.random.default_rng(0).normal(size=(1, 3, 3, 256)).astype("float32")
    moved = features[:, ::-1, ::-1]
    for model, same in ((avg, True), (flat, False)):
        a, b = (np.asarray(model.get_layer("pool")(f)) for f in (features, moved))
        assert np.allclose(a, b, atol=1e-6) is same


def _layers_named(model, prefix: str) -> list:
    return [layer for layer in model.get_layer("backbone").layers if layer.name.startswith(prefix)]


def test_backbone_options_shape_the_custom_cnn():
    """convs per block and block_dropout reach the layers; the registry's own builder
    arguments (vggnet's widths) stay under the options."""
    options = {"convs": (1, 2, 3, 3), "block_dropout": 0.05}
    model = build_model(
        "custom_cnn", image_size=48, channels=1, heads=("expression",), backbone_options=options
    )
    convs = [len(_layers_named(model, f"block{b}_conv")) for b in (1, 2, 3, 4)]
    assert convs == [1, 2, 3, 3]
    rates = [model.get_layer("backbone").get_layer(f"block{b}_dropout").rate for b in (1, 2, 3, 4)]
    assert np.allclose(rates, [0.05, 0.10, 0.15, 0.20])
    default = build_model("custom_cnn", image_size=48, channels=1, heads=("expression",))
    assert [len(_layers_named(default, f"block{b}_conv")) for b in (1, 2, 3, 4)] == [2] * 4
    assert model.count_params() > default.count_params()
    wide = build_model("vggnet", image_size=48, channels=1, backbone_options={"convs": 1})
    assert [
        layer.filters
        for layer in _layers_named(wide, "block")
        if isinstance(layer, keras.layers.Conv2D)
    ] == [64, 128, 256, 512]
    assert model(_pixels(2, 48, 1))["expression"].shape == (2, 8)


def test_residual_custom_cnn_starts_each_block_as_its_shortcut():
    """A shortcut per block, added before the last ReLU; the branch's last BatchNorm starts at
    zero (prepare_from_scratch), so each block starts as its 1x1 projection."""
    model = build_model(
        "custom_cnn",
        image_size=48,
        channels=1,
        heads=("expression",),
        backbone_options={"residual": True, "convs": (1, 2, 2, 2)},
    )
    backbone = model.get_layer("backbone")
    assert [layer.name for layer in _layers_named(model, "block") if "add" in layer.name] == [
        f"block{b}_add" for b in (1, 2, 3, 4)
    ]
    for block, last in zip((1, 2, 3, 4), (1, 2, 2, 2), strict=True):
        assert np.all(np.asarray(backbone.get_layer(f"block{block}_bn{last}").gamma) == 0)
        assert np.all(np.asarray(backbone.get_layer(f"block{block}_shortcut_bn").gamma) == 1)
        assert backbone.get_layer(f"block{block}_shortcut").kernel.shape[:2] == (1, 1)
    plain = build_model(
        "custom_cnn",
        image_size=48,
        channels=1,
        heads=("expression",),
        backbone_options={"convs": (1, 2, 2, 2)},
    )
    assert not [layer for layer in _layers_named(plain, "block") if "add" in layer.name]
    assert plain.count_params() < model.count_params() < 1.1 * plain.count_params()
    # At the start each block is its shortcut: the branch adds nothing to the output.
    x = _pixels(2, 48, 1)
    block1 = keras.Model(backbone.input, backbone.get_layer("block1_relu1").output)
    shortcut = keras.Model(backbone.input, backbone.get_layer("block1_shortcut_bn").output)
    assert np.allclose(block1(x), np.maximum(shortcut(x), 0), atol=1e-5)
    assert model(x)["expression"].shape == (2, 8)


def test_squeeze_excite_gates_each_blocks_channels_per_image():
    """se_ratio: a gate per block, after its last ReLU and before the pooling, scaling each
    channel by a sigmoid of a bottleneck over the map's average; a few weights, none at 0."""
    options = {"se_ratio": 0.25}
    model = build_model(
        "custom_cnn", image_size=48, channels=1, heads=("expression",), backbone_options=options
    )
    backbone = model.get_layer("backbone")
    assert [layer.name for layer in backbone.layers if layer.name.endswith("_excite")] == [
        f"block{b}_se_excite" for b in (1, 2, 3, 4)
    ]
    assert backbone.get_layer("block3_se_reduce").kernel.shape == (128, 32)
    plain = build_model("custom_cnn", image_size=48, channels=1, heads=("expression",))
    gates = sum(2 * w * (w // 4) + w + w // 4 for w in (32, 64, 128, 256))
    assert model.count_params() == plain.count_params() + gates
    # A gate of sigmoid(0) = 0.5 halves every channel of every image.
    expand = backbone.get_layer("block1_se_expand")
    expand.set_weights([np.zeros_like(w) for w in expand.get_weights()])
    x = _pixels(3, 48, 1)
    relu = keras.Model(backbone.input, backbone.get_layer("block1_relu2").output)
    gated = keras.Model(backbone.input, backbone.get_layer("block1_se_excite").output)
    assert np.allclose(gated(x), 0.5 * np.asarray(relu(x)), atol=1e-6)
    # With its weights, the gate differs between images: context per face, not a constant.
    backbone.get_layer("block2_se_expand").bias.assign(np.zeros(64, "float32"))
    gate = keras.Model(backbone.input, backbone.get_layer("block2_se_expand").output)(x)
    assert not np.allclose(gate[0], gate[1])
    assert model(x)["expression"].shape == (3, 8)
    # One share per block: the gates where the maps are small, none at 48 and 24 px.
    late = build_model(
        "custom_cnn",
        image_size=48,
        channels=1,
        heads=("expression",),
        backbone_options={"se_ratio": (0, 0, 0.25, 0.25)},
    ).get_layer("backbone")
    assert [layer.name for layer in late.layers if layer.name.endswith("_excite")] == [
        "block3_se_excite",
        "block4_se_excite",
    ]


def test_train_crop_trains_on_each_images_own_window_and_predicts_on_the_centre(tmp_path):
    """train_crop: in training every image gives its own random window, pixel for pixel (no
    resampling); in inference the centre window, so the network's maps have the same size in
    both; the same seed, the same windows; the layer survives saving."""
    options = {"train_crop": 44}
    model = build_model(
        "custom_cnn", image_size=48, channels=1, heads=("expression",), backbone_options=options
    )
    backbone = model.get_layer("backbone")
    crop = backbone.get_layer("train_crop")
    assert backbone.output.shape[1:3] == (2, 2)  # 44 px pools to 2x2 (48 px to 3x3)
    x = np.arange(16 * 48 * 48, dtype="float32").reshape(16, 48, 48, 1)
    assert np.array_equal(np.asarray(crop(x)), x[:, 2:46, 2:46])
    keras.utils.set_random_seed(1)
    windows = np.asarray(crop(x, training=True))
    assert windows.shape == (16, 44, 44, 1)
    offsets = set()
    for image, window in zip(x[..., 0], windows[..., 0], strict=True):
        y0, x0 = divmod(int(window[0, 0]) % (48 * 48), 48)
        assert np.array_equal(window, image[y0 : y0 + 44, x0 : x0 + 44])
        offsets.add((y0, x0))
    assert len(offsets) > 4
    again = (
        build_model(
            "custom_cnn", image_size=48, channels=1, heads=("expression",), backbone_options=options
        )
        .get_layer("backbone")
        .get_layer("train_crop")
    )
    keras.utils.set_random_seed(1)
    assert np.array_equal(np.asarray(again(x, training=True)), windows)
    assert model(_pixels(2, 48, 1), training=True)["expression"].shape == (2, 8)
    plain = build_model("custom_cnn", image_size=48, channels=1, heads=("expression",))
    assert "train_crop" not in {layer.name for layer in plain.get_layer("backbone").layers}
    assert plain.count_params() == model.count_params()
    model.save(tmp_path / "cropped.keras")
    loaded = keras.saving.load_model(tmp_path / "cropped.keras", compile=False)
    assert loaded.get_layer("backbone").get_layer("train_crop").size == 44
    faces = _pixels(2, 48, 1)
    assert np.allclose(loaded(faces)["expression"], model(faces)["expression"], atol=1e-6)
    # Outside the centre window nothing reaches the prediction.
    framed = faces.copy()
    framed[:, :2] = framed[:, -2:] = framed[:, :, :2] = framed[:, :, -2:] = 0.0
    assert np.allclose(model(framed)["expression"], model(faces)["expression"], atol=1e-6)


def test_standardize_takes_each_faces_lighting_and_contrast_out(tmp_path):
    """standardize: each face (the window, with train_crop) at zero mean and unit variance
    before the first convolution, in float32 under mixed precision; a brighter, flatter copy of
    a face gives the same features, a flat face comes out finite; no weights added; the layer
    survives saving."""
    options = {"train_crop": 44, "standardize": True}
    with dtype_policy("mixed_bfloat16"):
        half = build_model(
            "custom_cnn", image_size=48, channels=1, heads=("expression",), backbone_options=options
        )
    assert half.get_layer("backbone").get_layer("standardize").compute_dtype == "float32"
    model = build_model(
        "custom_cnn", image_size=48, channels=1, heads=("expression",), backbone_options=options
    )
    backbone = model.get_layer("backbone")
    layer = backbone.get_layer("standardize")
    assert [lyr.name for lyr in backbone.layers[1:3]] == ["train_crop", "standardize"]
    faces = _pixels(4, 48, 1) / 255.0
    out = np.asarray(layer(faces))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1.0, atol=1e-3)
    flat = np.asarray(layer(np.full((1, 44, 44, 1), 0.5, dtype="float32")))
    assert np.array_equal(flat, np.zeros_like(flat))

    def change(net: keras.Model) -> float:
        """How far the features move when the faces are darker in contrast and brighter."""
        features = net.get_layer("backbone")
        before = np.asarray(features(faces))
        after = np.asarray(features(faces * 0.6 + 0.15))
        return float(np.abs(after - before).max() / np.abs(before).max())

    plain = build_model(
        "custom_cnn",
        image_size=48,
        channels=1,
        heads=("expression",),
        backbone_options={"train_crop": 44},
    )
    assert "standardize" not in {lyr.name for lyr in plain.get_layer("backbone").layers}
    assert plain.count_params() == model.count_params()
    assert change(model) < 1e-4 < 0.1 < change(plain)
    model.save(tmp_path / "standardized.keras")
    loaded = keras.saving.load_model(tmp_path / "standardized.keras", compile=False)
    assert loaded.get_layer("backbone").get_layer("standardize").epsilon == layer.epsilon
    pixels = _pixels(2, 48, 1)
    np.testing.assert_allclose(loaded(pixels)["expression"], model(pixels)["expression"], atol=1e-6)


def test_train_crop_is_left_out_with_a_landmark_head_in_one_line(caplog):
    """A profile with train_crop still trains on data with landmarks: their targets are in the
    whole image's pixels, so the model sees the whole image and the log says why."""
    with caplog.at_level(logging.WARNING, logger="helpers.models"):
        model = build_model(
            "custom_cnn", image_size=48, channels=1, backbone_options={"train_crop": 44}
        )
    assert "train_crop" not in {layer.name for layer in model.get_layer("backbone").layers}
    assert model.get_layer("backbone").output.shape[1:3] == (3, 3)
    (line,) = [r.getMessage() for r in caplog.records if "train_crop" in r.getMessage()]
    assert "landmark" in line and "\n" not in line


@pytest.mark.parametrize("bad", [48, 0, 44.0, True, "44"])
def test_train_crop_must_be_a_window_inside_the_input(bad):
    with pytest.raises(ConfigError, match="train_crop"):
        build_model(
            "custom_cnn",
            image_size=48,
            channels=1,
            heads=("expression",),
            backbone_options={"train_crop": bad},
        )


def _fused_calls(monkeypatch) -> list[int]:
    """Counts the calls of TensorFlow's fused BatchNorm kernel from here on."""
    import tensorflow as tf

    calls: list[int] = []
    kernel = tf.compat.v1.nn.fused_batch_norm

    def counted(*args, **kwargs):
        calls.append(1)
        return kernel(*args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.nn, "fused_batch_norm", counted)
    return calls


def _batchnorm_pair(shape: tuple[int, ...], **options) -> tuple[keras.layers.Layer, ...]:
    """Keras's BatchNorm and the fused one, built with the same (non-trivial) weights."""
    ours = FusedBatchNormalization(momentum=0.9, **options)
    theirs = keras.layers.BatchNormalization(momentum=0.9, **options)
    ours.build(shape)
    theirs.build(shape)
    rng = np.random.default_rng(1)
    weights = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return ours, theirs


@pytest.mark.parametrize("policy, atol", [("float32", 1e-5), ("mixed_bfloat16", 0.05)])
def test_fused_batchnorm_trains_as_keras_batchnorm_does(policy, atol, monkeypatch):
    """The same outputs, gradients and moving averages (Keras's biased batch variance, not the
    kernel's unbiased one), step after step, in float32 and in mixed bfloat16; inference is
    Keras's own."""
    import tensorflow as tf

    calls = _fused_calls(monkeypatch)
    x = np.random.default_rng(0).normal(2.0, 3.0, (4, 5, 5, 6)).astype("float32")
    keras.mixed_precision.set_global_policy(policy)
    try:
        ours, theirs = _batchnorm_pair(x.shape)
        for _ in range(3):
            grads = []
            for layer in (ours, theirs):
                inputs = tf.constant(x)
                with tf.GradientTape() as tape:
                    tape.watch(inputs)
                    y = layer(inputs, training=True)
                    loss = tf.reduce_sum(tf.cast(y, "float32") * np.arange(6, dtype="float32"))
                grads.append(tape.gradient(loss, [inputs, layer.gamma.value, layer.beta.value]))
                assert keras.backend.standardize_dtype(y.dtype) == layer.compute_dtype
            for a, b in zip(*grads, strict=True):
                np.testing.assert_allclose(np.float32(a), np.float32(b), atol=atol * 10, rtol=0.02)
            np.testing.assert_allclose(
                np.float32(ours(x, training=True)), np.float32(theirs(x, training=True)), atol=atol
            )
        for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5)
        np.testing.assert_allclose(np.float32(ours(x)), np.float32(theirs(x)), atol=atol)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert len(calls) == 6  # every training call fused, no inference call


@pytest.mark.parametrize(
    "shape, options, frozen",
    [
        ((4, 6), {}, False),  # a dense layer's features
        ((4, 3, 5, 5), {"axis": 1}, False),  # channels first
        ((4, 5, 5, 3), {"renorm": True}, False),
        ((4, 5, 5, 3), {"scale": False}, False),
        ((4, 5, 5, 3), {}, True),  # frozen: inference statistics
    ],
)
def test_fused_batchnorm_takes_keras_path_where_the_kernel_does_not_fit(
    shape, options, frozen, monkeypatch
):
    calls = _fused_calls(monkeypatch)
    x = np.random.default_rng(0).normal(1.0, 2.0, shape).astype("float32")
    ours, theirs = _batchnorm_pair(shape, **options)
    ours.trainable = theirs.trainable = not frozen
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-6)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert calls == []


def test_custom_cnn_trains_fused_batchnorm_and_loads_back(tmp_path, monkeypatch):
    """Every BatchNorm of the custom CNN (the residual shortcuts' too) is the fused one, fit()
    takes the kernel, and a saved model loads safely with the same predictions."""
    calls = _fused_calls(monkeypatch)
    model = build_model(
        "custom_cnn",
        image_size=32,
        channels=1,
        heads=("expression",),
        backbone_options={"residual": True},
    )
    norms = [
        layer
        for layer in model.get_layer("backbone").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(norms) == 12 and all(isinstance(n, FusedBatchNormalization) for n in norms)
    _fit_one_step(model, 32, 1)
    assert len(calls) == 12
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = load_trained(path)
    assert type(loaded.get_layer("backbone").get_layer("block1_bn1")) is FusedBatchNormalization
    faces = _pixels(2, 32, 1)
    np.testing.assert_allclose(loaded(faces)["expression"], model(faces)["expression"], atol=1e-6)


def test_applications_train_fused_batchnorm_and_read_keras_weights_files(tmp_path, monkeypatch):
    """A keras.applications network gets the fused kernel in every BatchNorm, and weights files
    saved with Keras's own layer (before the fused kernel) load into it, and back."""
    calls = _fused_calls(monkeypatch)
    model = build_model("mobilenetv2", image_size=32, channels=1, heads=("expression",))
    backbone = model.get_layer("backbone")
    norms = [x for x in backbone.layers if isinstance(x, keras.layers.BatchNormalization)]
    assert len(norms) == 52 and {type(x) for x in norms} == {FusedBatchNormalization}
    assert {x.momentum for x in norms} == {SCRATCH_BN_MOMENTUM}
    _fit_one_step(model, 32, 1)
    assert len(calls) == len(norms)
    keras_norms = with_norm(backbone, keras.layers.BatchNormalization)
    assert FusedBatchNormalization not in {type(x) for x in keras_norms.layers}
    keras_norms.save_weights(tmp_path / "keras.weights.h5")
    warm = build_model(
        "mobilenetv2", image_size=32, channels=1, weights=tmp_path / "keras.weights.h5"
    )
    assert _same_weights(warm.get_layer("backbone"), backbone)
    backbone.save_weights(tmp_path / "fused.weights.h5")
    fresh = with_norm(
        build_model("mobilenetv2", image_size=32, channels=1, seed=1).get_layer("backbone"),
        keras.layers.BatchNormalization,
    )
    fresh.load_weights(tmp_path / "fused.weights.h5")
    assert _same_weights(fresh, backbone)


def test_backbone_options_reach_keras_applications_builders():
    model = build_model(
        "mobilenetv2",
        image_size=32,
        channels=3,
        heads=("expression",),
        backbone_options={"alpha": 0.35},
    )
    full = build_model("mobilenetv2", image_size=32, channels=3, heads=("expression",))
    assert model.count_params() < full.count_params() / 2


@pytest.mark.parametrize(
    "options,message",
    [
        ({"conv": 2}, r"unknown backbone option\(s\) \['conv'\].*'block_dropout', 'convs'"),
        ({"convs": (1, 2, 3)}, "one such integer per block"),
        ({"convs": 0}, "convs must be"),
        ({"block_dropout": 0.3}, "block_dropout"),
        ({"residual": "yes"}, "residual must be true or false"),
        ({"standardize": 1}, "standardize must be true or false"),
        ({"se_ratio": 1.5}, "se_ratio must be between 0 and 1"),
        ({"se_ratio": True}, "se_ratio must be between 0 and 1"),
        ({"se_ratio": (0.25, 0.25)}, "one such share per block"),
        ({"se_ratio": None}, "se_ratio must be between 0 and 1"),
        ({"convs": "22"}, "convs must be"),
        ({"pooling": "max"}, "unknown backbone option"),
        ({"input_shape": (8, 8, 1)}, "unknown backbone option"),
        (["convs"], "must map argument names"),
    ],
)
def test_bad_backbone_options_name_what_is_valid(options, message):
    with pytest.raises(ConfigError, match=message):
        build_model("custom_cnn", image_size=48, channels=1, backbone_options=options)


def test_unknown_name_raises_config_error_listing_the_valid_names():
    with pytest.raises(ConfigError) as caught:
        build_model("alexnet")
    for name in NAMES:
        assert name in str(caught.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"image_size": 8},
        {"image_size": 48.0},
        {"channels": 2},
        {"heads": ("age",)},
        {"heads": ()},
        {"heads": ("expression", "expression")},
        {"transfer": "half"},
        {"trainable_top_n": -1},
        {"dropout": 1.0},
        {"shared_units": 0},
        {"pooling": "max"},
        {"n_classes": 9},
        {"landmark_activation": "relu"},
        {"weights": "/nonexistent/weights.h5"},
        {"weights_fallback": "maybe"},
        {"backbone_options": {"convs": 2}},  # VGG16's builder has no such argument
        {"backbone_options": {"include_top": True}},
    ],
)
def test_bad_arguments_raise_config_error_before_any_work(bad, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(factory, "build_backbone", no_work)
    with pytest.raises(ConfigError):
        build_model("vgg16", **bad)


def test_one_registry_entry_is_enough_for_a_new_backbone(monkeypatch):
    entry = ModelSpec(
        "mobilenetv2_035",
        "keras.applications:MobileNetV2",
        "keras.applications.mobilenet_v2:preprocess_input",
        "tf: pixels / 127.5 - 1",
        min_size=32,
        default_image_size=96,
        builder_kwargs={"alpha": 0.35},
    )
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # undone after the test
    registry.register(entry)
    model = build_model("mobilenetv2_035", image_size=32, channels=1, heads=("expression",))
    assert model(_pixels(1, 32, 1))["expression"].shape == (1, 8)
    assert model_metadata(model)["name"] == "mobilenetv2_035"


@pytest.mark.parametrize("name,channels", [("vgg16", 1), ("mobilenetv2", 3), ("custom_cnn", 1)])
def test_the_model_contains_its_own_preprocessing(name, channels):
    model = build_model(name, image_size=32, channels=channels, heads=("expression",))
    x = _pixels(2, 32, channels)
    inside = np.asarray(model.get_layer("preprocess")(x))
    if name == "custom_cnn":
        expected = x / 255.0
    else:
        rgb = np.repeat(x, 3, axis=-1) if channels == 1 else x
        expected = registry.function(name, "preprocess")(rgb.copy())
    np.testing.assert_allclose(inside, expected, rtol=1e-5, atol=1e-4)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b = (build_model("custom_cnn", image_size=32, channels=1, seed=3) for _ in range(2))
    c = build_model("custom_cnn", image_size=32, channels=1, seed=4)
    assert _same_weights(a, b) and not _same_weights(a, c)


def _fit_one_step(model: keras.Model, size: int, channels: int) -> None:
    heads = model_metadata(model)["heads"]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=build_losses(heads), run_eagerly=True)
    y = {
        "expression": np.array([0, 1, 2, 3]),
        "valence": np.zeros(4, "float32"),
        "arousal": np.zeros(4, "float32"),
        "landmarks": np.full((4, 136), 0.5, "float32"),
    }
    model.fit(
        _pixels(4, size, channels), {h: y[h] for h in heads}, batch_size=4, epochs=1, verbose=0
    )


def _moving_means(model: keras.Model) -> list[np.ndarray]:
    return [
        np.array(layer.moving_mean)
        for layer in model.get_layer("backbone").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _pretrained_file(name: str, tmp_path, size: int, channels: int) -> str:
    """Weights whose BatchNorm statistics were learned, like ImageNet's (offline stand-in)."""
    model = build_model(name, image_size=size, channels=channels, heads=("expression",), seed=1)
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.5, "float32"))
    path = str(tmp_path / f"{name}.weights.h5")
    model.save_weights(path)
    return path


@pytest.mark.parametrize("name", ["mobilenetv2", "custom_cnn"])
def test_pretrained_batchnorm_statistics_hold_during_full_fine_tuning(name, tmp_path):
    path = _pretrained_file(name, tmp_path, 32, 1)
    model = build_model(
        name, image_size=32, channels=1, heads=("expression",), weights=path, transfer="full"
    )
    means = _moving_means(model)
    conv = next(
        layer
        for layer in model.get_layer("backbone").layers
        if isinstance(layer, keras.layers.Conv2D)
    )
    kernel = np.array(conv.kernel)
    _fit_one_step(model, 32, 1)
    for after, before in zip(_moving_means(model), means, strict=False):
        np.testing.assert_array_equal(after, before)
    assert not np.array_equal(np.array(conv.kernel), kernel)  # yet full fine-tuning trains


@pytest.mark.parametrize("name", ["mobilenetv2", "custom_cnn"])
def test_randomly_initialised_backbones_learn_their_batchnorm_statistics(name):
    model = build_model(name, image_size=32, channels=1, heads=("expression",))
    means = _moving_means(model)
    _fit_one_step(model, 32, 1)
    assert not np.array_equal(_moving_means(model)[0], means[0])


def _inference_gap(model: keras.Model, steps: int) -> float:
    """Train on one batch for `steps` steps (SGD, lr 0: weights fixed, statistics move), then
    the largest gap between inference-mode and training-mode outputs: lagging statistics."""
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=build_losses(("expression",)))
    x = _pixels(8, 32, 3)
    # One epoch of `steps` identical batches: the same updates as `steps` epochs, without
    # fit()'s per-epoch overhead.
    repeated = np.tile(x, (steps, 1, 1, 1))
    labels = np.tile(np.arange(8) % 4, steps)
    model.fit(repeated, {"expression": labels}, batch_size=8, epochs=1, shuffle=False, verbose=0)
    inference = np.array(model(x, training=False)["expression"])
    training_mode = np.array(model(x, training=True)["expression"])
    return float(np.abs(inference - training_mode).max())


def test_randomly_initialised_batchnorm_follows_the_weights_within_steps(tmp_path):
    """MobileNetV2's own momentum (0.999) keeps its 0/1 start for thousands of steps, so a
    model trained from scratch for minutes is dead in inference mode; ours is not."""
    model = build_model(
        "mobilenetv2", image_size=32, channels=3, heads=("expression",), dropout=0.0
    )
    momenta = {
        layer.momentum
        for layer in model.get_layer("backbone").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert momenta == {SCRATCH_BN_MOMENTUM}
    following = _inference_gap(model, 150)
    lagging = build_model(
        "mobilenetv2", image_size=32, channels=3, heads=("expression",), dropout=0.0
    )
    for layer in lagging.get_layer("backbone").layers:  # what keras.applications ship
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.999
    assert _inference_gap(lagging, 150) > 2 * following
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    assert {
        layer.momentum
        for layer in loaded.get_layer("backbone").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    } == {SCRATCH_BN_MOMENTUM}


def _feature_spread(model: keras.Model, x: np.ndarray) -> float:
    """Standard deviation of the backbone's features for raw pixels x."""
    features = model.get_layer("backbone")(model.get_layer("preprocess")(x))
    return float(np.std(keras.ops.convert_to_numpy(features)))


def test_preprocessing_gain_is_what_each_preprocessing_scales_pixels_by():
    assert preprocessing_gain("vgg16") == pytest.approx(1.0)  # caffe: the mean subtracted
    assert preprocessing_gain("mobilenetv2") == pytest.approx(2 / 255)  # x / 127.5 - 1
    assert preprocessing_gain("custom_cnn") == pytest.approx(1 / 255)


def test_a_plain_backbone_from_scratch_starts_with_its_features_near_unit_scale():
    """VGG16 has no BatchNorm: from Keras's Glorot default its 13 ReLU convolutions shrink the
    signal layer by layer, and the heads see features near zero. He initialised, with the
    first layer scaled for its caffe-preprocessed pixels, they start near 1."""
    x = _pixels(8, 32, 3)
    model = build_model("vgg16", image_size=32, channels=3, heads=("expression",))
    glorot = keras.applications.VGG16(include_top=False, weights=None, input_shape=(32, 32, 3))
    as_shipped = float(np.std(keras.ops.convert_to_numpy(glorot(model.get_layer("preprocess")(x)))))
    assert as_shipped < 0.1
    assert 0.3 < _feature_spread(model, x) < 3.0
    again = build_model("vgg16", image_size=32, channels=3, heads=("expression",))
    assert _same_weights(model, again)  # the seed fixes the draw


def test_the_card_records_what_preparing_from_scratch_did():
    """Read by the methods section, which cites zero-gamma and He initialisation only for the
    networks that had them."""
    plain: dict = {}
    build_model("custom_cnn", image_size=48, channels=1, heads=("expression",), from_scratch=plain)
    assert plain == {
        "batchnorm_momentum": 0.9,
        "zero_gamma_branches": 0,
        "he_initialisation": False,
    }
    residual: dict = {}
    build_model(
        "custom_cnn",
        image_size=48,
        channels=1,
        heads=("expression",),
        backbone_options={"residual": True},
        from_scratch=residual,
    )
    assert residual["zero_gamma_branches"] == 4
    vgg: dict = {}
    build_model("vgg16", image_size=32, channels=3, heads=("expression",), from_scratch=vgg)
    assert vgg == {"batchnorm_momentum": None, "zero_gamma_branches": 0, "he_initialisation": True}
    backbone = build_model("custom_cnn", image_size=48, channels=1, heads=("expression",))
    assert prepare_from_scratch(backbone.get_layer("backbone"))["batchnorm_momentum"] == 0.9
    cfg = TrainConfig(model="custom_cnn", image_size=48, channels=1, heads=("expression",))
    built = _build(cfg)
    assert built[4] == plain  # what notebook 04 writes into the card


def test_backbones_with_batchnorm_keep_their_builders_initialisation():
    """BatchNorm rescales every layer's output, so He initialisation is left to plain stacks."""
    model = build_model("custom_cnn", image_size=48, channels=1, heads=("expression",))
    kernel = np.asarray(model.get_layer("backbone").get_layer("block1_conv1").kernel)
    glorot_limit = np.sqrt(6 / (9 * 1 + 9 * kernel.shape[-1]))
    assert np.abs(kernel).max() <= glorot_limit


def test_pretrained_batchnorm_keeps_its_momentum(tmp_path):
    path = _pretrained_file("mobilenetv2", tmp_path, 32, 1)
    model = build_model(
        "mobilenetv2", image_size=32, channels=1, heads=("expression",), weights=path
    )
    assert {
        layer.momentum
        for layer in model.get_layer("backbone").layers
        if isinstance(layer, keras.layers.BatchNormalization)
    } == {0.999}


def _backbone_trainable(model: keras.Model) -> list[bool]:
    return [layer.trainable for layer in model.get_layer("backbone").layers if layer.weights]


def test_transfer_modes_set_trainability(tmp_path):
    path = _pretrained_file("mobilenetv2", tmp_path, 32, 1)
    model = build_model(
        "mobilenetv2", image_size=32, channels=1, weights=path, heads=("expression",)
    )
    backbone = model.get_layer("backbone")
    assert transfer_mode(model) == "frozen" and not backbone.trainable_weights
    head_weights = len(model.trainable_weights)
    assert head_weights == 4  # shared dense + expression head: kernel and bias each

    set_transfer_mode(model, "top_n", top_n=10)
    assert transfer_mode(model) == "top_n"
    for index, layer in enumerate(backbone.layers):
        on_top = index >= len(backbone.layers) - 10
        is_bn = isinstance(layer, keras.layers.BatchNormalization)
        assert layer.trainable == (on_top and not is_bn), layer.name
    assert head_weights < len(model.trainable_weights)

    set_transfer_mode(model, "full")
    assert transfer_mode(model) == "full"
    for layer in backbone.layers:  # pretrained BatchNorm stays frozen so its statistics hold
        assert layer.trainable == (not isinstance(layer, keras.layers.BatchNormalization))
    set_transfer_mode(model, "frozen")
    assert len(model.trainable_weights) == head_weights
    with pytest.raises(ConfigError):
        set_transfer_mode(model, "half")


def test_default_transfer_freezes_pretrained_backbones_only(tmp_path):
    random_init = build_model("vgg16", image_size=32, channels=1, heads=("expression",))
    assert transfer_mode(random_init) == "full"
    path = tmp_path / "vgg16.weights.h5"
    random_init.save_weights(path)
    loaded = build_model("vgg16", image_size=32, channels=1, heads=("expression",), weights=path)
    assert transfer_mode(loaded) == "frozen"
    top = build_model(
        "vgg16",
        image_size=32,
        channels=1,
        heads=("expression",),
        weights=path,
        transfer="top_n",
        trainable_top_n=4,
    )
    # VGG16 has 13 convs; its last 4 layers are 3 convs and a pooling layer
    assert _backbone_trainable(top) == [False] * 10 + [True] * 3


# ----------------------------------------------------------------------------- weights offline


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty keras cache: what a machine without internet sees."""
    monkeypatch.setattr(keras.src.backend.config, "keras_home", lambda: str(tmp_path / "keras"))

    def unreachable(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known (network disabled by the test)")

    monkeypatch.setattr(socket, "getaddrinfo", unreachable)
    monkeypatch.setattr(socket, "create_connection", unreachable)


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "helpers.models.backbones"]


def test_imagenet_offline_falls_back_to_random_init_with_one_clear_line(offline, caplog, recwarn):
    caplog.set_level(logging.WARNING, logger="helpers.models.backbones")
    before = socket.getdefaulttimeout()
    model = build_model(
        "mobilenetv2", image_size=32, channels=1, heads=("expression",), weights="imagenet", seed=5
    )
    assert [str(w.message) for w in recwarn] == []  # no Keras note on the input size either
    (message,) = _messages(caplog)
    assert "mobilenetv2" in message and "ImageNet weights unavailable" in message
    assert "random initialisation" in message and "\n" not in message
    assert socket.getdefaulttimeout() == before
    assert transfer_mode(model) == "full"  # nothing pretrained to protect
    plain = build_model("mobilenetv2", image_size=32, channels=1, heads=("expression",), seed=5)
    assert _same_weights(model, plain)


def test_imagenet_download_uses_a_short_timeout_and_restores_it(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(keras.src.backend.config, "keras_home", lambda: str(tmp_path / "keras"))
    seen = []

    def hanging(*args, **kwargs):
        seen.append(socket.getdefaulttimeout())
        raise TimeoutError("timed out")

    monkeypatch.setattr(urllib.request, "urlopen", hanging)
    before = socket.getdefaulttimeout()
    build_model(
        "mobilenetv2",
        image_size=32,
        channels=3,
        heads=("valence",),
        weights="imagenet",
        download_timeout_s=2.5,
    )
    assert seen == [2.5]
    assert socket.getdefaulttimeout() == before
    assert "timed out" in _messages(caplog)[0]


def test_imagenet_offline_with_error_fallback_raises_config_error(offline):
    with pytest.raises(ConfigError, match="mobilenetv2: ImageNet weights unavailable"):
        build_model(
            "mobilenetv2", image_size=32, channels=1, weights="imagenet", weights_fallback="error"
        )
    assert socket.getdefaulttimeout() is None


def test_imagenet_offline_falls_back_to_a_local_weights_file(offline, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="helpers.models.backbones")
    source = build_model("mobilenetv2", image_size=32, channels=1, seed=1)
    path = tmp_path / "mobilenetv2.weights.h5"
    source.save_weights(path)
    model = build_model(
        "mobilenetv2", image_size=32, channels=1, seed=2, weights="imagenet", weights_fallback=path
    )
    assert _same_weights(model, source)
    assert str(path) in _messages(caplog)[0]
    assert transfer_mode(model) == "frozen"


def test_custom_cnn_has_no_imagenet_weights_and_says_so(offline, caplog):
    caplog.set_level(logging.WARNING, logger="helpers.models.backbones")
    build_model("custom_cnn", image_size=32, channels=1, weights="imagenet")
    assert "custom_cnn" in _messages(caplog)[0]


# ----------------------------------------------------------------------------- local weights


def test_keras_file_warm_start_copies_matching_layers_even_with_other_heads(tmp_path):
    source = build_model("custom_cnn", image_size=32, channels=1, seed=1)
    path = tmp_path / "custom_cnn.keras"
    source.save(path)
    model = build_model(
        "custom_cnn",
        image_size=32,
        channels=1,
        seed=2,
        heads=("expression", "valence"),
        weights=path,
    )
    for name in ("backbone", "shared", "expression", "valence"):
        assert _same_weights(model.get_layer(name), source.get_layer(name)), name


def test_backbone_only_weights_file_loads_into_the_backbone(tmp_path):
    source = build_model("custom_cnn", image_size=32, channels=1, seed=1)
    path = tmp_path / "backbone.weights.h5"
    source.get_layer("backbone").save_weights(path)
    model = build_model("custom_cnn", image_size=32, channels=1, seed=2, weights=path)
    assert _same_weights(model.get_layer("backbone"), source.get_layer("backbone"))
    assert not _same_weights(model.get_layer("shared"), source.get_layer("shared"))


def test_legacy_h5_backbone_file_loads_by_layer_name(tmp_path):
    """The form of keras.applications' own notop files, e.g. fetched on another machine."""
    source = build_model("custom_cnn", image_size=32, channels=1, seed=1)
    path = tmp_path / "custom_cnn_notop.h5"
    source.get_layer("backbone").save(path)
    model = build_model("custom_cnn", image_size=32, channels=1, seed=2, weights=path)
    assert _same_weights(model.get_layer("backbone"), source.get_layer("backbone"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one clear error, not a Keras warning per layer first
        with pytest.raises(DataError, match="no layer of the vgg16 backbone") as caught:
            build_model("vgg16", image_size=32, channels=1, weights=path)
    assert "same-named layer(s) of other shapes: block1_conv1, block1_conv2" in str(caught.value)


def test_legacy_h5_file_of_other_channels_loads_the_rest_and_names_the_skipped_layer(
    tmp_path, caplog
):
    """A grayscale model's notop file into an RGB model: every layer but the first fits."""
    source = build_model("custom_cnn", image_size=32, channels=1, seed=1)
    path = tmp_path / "custom_cnn_gray_notop.h5"
    source.get_layer("backbone").save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_model("custom_cnn", image_size=32, channels=3, seed=2, weights=path)
    loaded, saved = model.get_layer("backbone"), source.get_layer("backbone")
    np.testing.assert_array_equal(
        loaded.get_layer("block2_conv1").get_weights()[0],
        saved.get_layer("block2_conv1").get_weights()[0],
    )
    skipped = [r.getMessage() for r in caplog.records if "initial weights" in r.getMessage()]
    assert len(skipped) == 1
    assert "1 layer(s) of the custom_cnn backbone" in skipped[0]
    assert skipped[0].endswith(": block1_conv1")


@pytest.mark.parametrize(
    "filename,content",
    [
        ("broken.weights.h5", b"not an hdf5 file"),
        ("broken.keras", b"not a zip"),
        ("weights.bin", b"\0"),
    ],
)
def test_unreadable_weights_file_raises_data_error_naming_it(tmp_path, filename, content):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        build_model("custom_cnn", image_size=32, channels=1, weights=path)
    assert str(path) in str(caught.value)


def test_weights_file_from_other_heads_raises_data_error(tmp_path):
    path = tmp_path / "all_heads.weights.h5"
    build_model("custom_cnn", image_size=32, channels=1).save_weights(path)
    with pytest.raises(DataError, match=r"all_heads\.weights\.h5"):
        build_model("custom_cnn", image_size=32, channels=1, heads=("expression",), weights=path)


# ----------------------------------------------------------------------------- metadata, saving


def test_saved_model_keeps_preprocessing_outputs_and_metadata(tmp_path):
    model = build_model("vgg16", image_size=32, channels=1, heads=("expression", "landmarks"))
    path = tmp_path / "vgg16.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    x = _pixels(3, 32, 1)
    before, after = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    assert set(after) == {"expression", "landmarks"}
    np.testing.assert_allclose(after["expression"], before["expression"], rtol=1e-5)
    assert model_metadata(loaded) == model_metadata(model)


def test_metadata_from_kwargs_matches_the_built_model():
    kwargs = {
        "name": "vgg16",
        "image_size": 48,
        "channels": 1,
        "n_classes": 7,
        "heads": ["landmarks", "expression"],
    }
    facts = model_metadata(kwargs)
    built = model_metadata(build_model(**kwargs))
    for key in ("name", "image_size", "channels", "preprocessing", "heads", "labels", "landmarks"):
        assert facts[key] == built[key], key
    assert facts["labels"] == list(EXPRESSIONS[:7])
    assert facts["heads"] == ["expression", "landmarks"]
    assert "grayscale replicated to 3 channels" in facts["preprocessing"]
    assert "vgg16.preprocess_input" in facts["preprocessing"]
    with pytest.raises(ConfigError, match="custom_cnn"):
        model_metadata({"name": "alexnet"})
    with pytest.raises(ConfigError, match="colour"):
        model_metadata({"name": "vgg16", "colour": True})
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with pytest.raises(ConfigError, match="build_model"):
        model_metadata(plain)


def test_outputs_stay_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("custom_cnn", image_size=32, channels=1)
        out = model(_pixels(2, 32, 1))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {keras.backend.standardize_dtype(v.dtype) for v in out.values()} == {"float32"}


def test_another_runs_model_as_weights_says_which_layers_start_from_scratch(tmp_path):
    """A grayscale 8-class model's file as the start of a colour 7-class one (the fine-tuning
    of a FER+ model on a 7-class set, say): every layer of one shape copied, and the one line
    names the first convolution and the expression head, left as initialised, with shapes."""
    source = build_model("custom_cnn", image_size=32, channels=1, heads=("expression", "valence"))
    path = tmp_path / "ferplus.keras"
    source.save(path)
    loaded: list[str] = []
    model = build_model(
        "custom_cnn", image_size=32, channels=3, heads=("expression", "arousal"),
        weights=path, n_classes=7, loaded=loaded, seed=1,
    )  # fmt: skip
    [summary] = loaded
    assert summary.startswith("custom_cnn: ") and " layers from ferplus.keras; left as " in summary
    assert "backbone/block1_conv1 (3x3x1x32 in the file, 3x3x3x32 here)" in summary
    assert "expression (256x8 in the file, 256x7 here)" in summary
    assert "arousal (not in the file)" in summary and "valence" not in summary
    copied, total = map(int, summary.split(": ")[1].split(" layers")[0].split(" of "))
    assert total - copied == 3
    donor = source.get_layer("backbone").get_layer("block2_conv1").get_weights()[0]
    mine = model.get_layer("backbone").get_layer("block2_conv1").get_weights()[0]
    np.testing.assert_array_equal(donor, mine)
