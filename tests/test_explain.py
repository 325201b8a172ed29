"""Grad-CAM (helpers.inference.explain): a model that learned where the class is marked points
there, one that learned nothing does not; maps are shaped, scaled and repeatable for every
architecture; the share on the face, its file, its figures, and the predictor's --explain.

The learnable task: 48 px grey noise with two textured squares. The one in the top-left corner
(the known place) carries the class, one of four stripe patterns; the one in the bottom-right
corner (the decoy) holds the same fine diagonal texture in every image and says nothing.
Valence is +0.8 for classes 0-1 and -0.8 for 2-3, so its map has a sign to get right. The
custom CNN learns it in seconds and then puts most of its heat on the known place (measured on
two CPUs: 0.64-0.70 of it over held-out images, 3.6-4.2 times the decoy's, across model seeds);
untrained models (0.19-0.36, and as much on the decoy) and models trained on labels independent
of the texture (0.27-0.51, at most 2.4 times the decoy's) do not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from figure_checks import check_figure
from helpers.core.errors import ConfigError, DataError
from helpers.core.landmarks import N_POINTS
from helpers.evaluation import heatmaps
from helpers.evaluation.comparison import flatten_metrics
from helpers.inference.cli import main
from helpers.inference.explain import Explainer, gradcam, heat_colours, normalise, overlay
from helpers.models import registry
from helpers.models.factory import build_model
from helpers.reporting import plots

SIZE, SIDE, N_TRAIN, N_TEST = 48, 16, 160, 48
KNOWN, DECOY = (4, 4), (28, 28)  # (row, column) of each square's top-left corner
MARGIN = 8  # one cell of the 6x6 feature map: a heatmap is no sharper than that
VALENCE = np.array([0.8, 0.8, -0.8, -0.8])


def _texture(kind: int) -> np.ndarray:
    """Stripes 4 px wide: 0 horizontal, 1 vertical, 2 checks, 3 diagonal; 4 the decoy's, finer
    and fainter."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    bands = (
        (yy // 4) % 2,
        (xx // 4) % 2,
        (yy // 4 + xx // 4) % 2,
        ((yy + xx) // 4) % 2,
        ((yy - xx) // 2) % 2,
    )[kind]
    return (bands * 2 - 1) * (70.0 if kind < 4 else 50.0)


def _images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n (48, 48, 1) images, classes balanced; class = the texture in the known place."""
    rng = np.random.default_rng(seed)
    x = rng.normal(90, 25, (n, SIZE, SIZE, 1))
    y = np.arange(n) % 4
    for i, label in enumerate(y):
        for (r, c), kind in ((KNOWN, label), (DECOY, 4)):
            x[i, r : r + SIDE, c : c + SIDE, 0] += _texture(int(kind))
    return x.clip(0, 255).astype(np.float32), y


def _region(corner: tuple[int, int]) -> np.ndarray:
    """A square with MARGIN around it, as a (48, 48) mask."""
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    r, c = corner
    mask[max(r - MARGIN, 0) : r + SIDE + MARGIN, max(c - MARGIN, 0) : c + SIDE + MARGIN] = True
    return mask


def looks_at_the_known_place(maps: np.ndarray) -> tuple[bool, float, float]:
    """The check: more than 0.55 of the heat on the known place (over held-out images), and
    more than three times the heat the decoy gets: thresholds midway between trained models and
    models trained on labels independent of the texture (the module's docstring)."""
    n = len(maps)
    known = float(np.mean(heatmaps.heat_share(maps, np.repeat(_region(KNOWN)[None], n, 0))))
    decoy = float(np.mean(heatmaps.heat_share(maps, np.repeat(_region(DECOY)[None], n, 0))))
    return known > 0.55 and known > 3 * decoy, known, decoy


def _independent_labels(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels shuffled so that each texture's images get every label equally often: a plain
    permutation of 160 labels leaves chance associations with the texture that a network learns
    (held-out accuracy 0.04, below chance: it looked at the known place to be wrong)."""
    shuffled = np.empty_like(y)
    for kind in np.unique(y):
        where = np.flatnonzero(y == kind)
        shuffled[where] = rng.permutation(np.resize(np.unique(y), len(where)))
    return shuffled


def _model(shuffle: bool, epochs: int = 6, seed: int = 0) -> keras.Model:
    """The custom CNN with expression (4 classes) and valence heads, trained on the task."""
    x, y = _images(N_TRAIN, 0)
    if shuffle:
        y = _independent_labels(y, np.random.default_rng(3))
    model = build_model(
        "custom_cnn",
        image_size=SIZE,
        channels=1,
        heads=("expression", "valence"),
        n_classes=4,
        seed=seed,
    )
    if epochs:
        model.compile(
            keras.optimizers.Adam(1e-3),
            loss={"expression": "sparse_categorical_crossentropy", "valence": "mse"},
        )
        model.fit(
            x,
            {"expression": y, "valence": VALENCE[y]},
            epochs=epochs,
            batch_size=8,
            verbose=0,
            shuffle=True,
        )
    return model


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, np.ndarray]:
    return _images(N_TEST, 2)


@pytest.fixture(scope="module")
def trained() -> keras.Model:
    return _model(shuffle=False)


# --------------------------------------------------------------------------- it finds the evidence


def test_a_trained_model_looks_where_the_class_is_marked(trained, held_out) -> None:
    x, y = held_out
    accuracy = float(np.mean(np.argmax(trained.predict(x, verbose=0)["expression"], 1) == y))
    assert accuracy >= 0.9  # it learned the task, so its heatmap has something to find
    passed, known, decoy = looks_at_the_known_place(gradcam(trained, x).maps)
    assert passed, (known, decoy)


@pytest.mark.parametrize("seed", [0, 1])
def test_an_untrained_model_does_not_pass_the_check(held_out, seed: int) -> None:
    x, _ = held_out
    passed, known, decoy = looks_at_the_known_place(gradcam(_model(False, 0, seed), x).maps)
    assert not passed, (known, decoy)


def test_a_model_trained_on_shuffled_labels_does_not_pass_the_check(held_out) -> None:
    x, _ = held_out
    passed, known, decoy = looks_at_the_known_place(gradcam(_model(shuffle=True), x).maps)
    assert not passed, (known, decoy)


def _sign_agreement(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Share of images whose valence map, on the known place, has the sign of the valence the
    texture there stands for."""
    maps = gradcam(model, x, head="valence").maps
    on_place = maps[:, _region(KNOWN)].mean(axis=1)
    return float(np.mean(np.sign(on_place) == np.sign(VALENCE[y])))


def test_the_valence_map_is_signed_by_what_the_face_does_to_the_output(trained, held_out):
    x, y = held_out
    maps = gradcam(trained, x, head="valence").maps
    assert maps.min() < 0 < maps.max() and np.abs(maps).max() <= 1.0
    assert _sign_agreement(trained, x, y) >= 0.9
    assert _sign_agreement(_model(False, 0), x, y) <= 0.6  # untrained: the sign is chance


# --------------------------------------------------------------------------- shapes, range, repeat


def test_maps_have_the_input_size_lie_in_0_1_and_repeat_exactly(trained, held_out) -> None:
    x, _ = held_out
    explainer = Explainer(trained)
    first = explainer(x[:10], batch_size=4)
    assert first.maps.shape == (10, SIZE, SIZE) and first.maps.dtype == np.float32
    peaks = first.maps.reshape(10, -1).max(axis=1)  # each map's peak is 1 before upsampling
    assert first.maps.min() >= 0.0 and ((peaks > 0.95) & (peaks <= 1.0)).all()
    assert first.layer == "block4_relu2 6x6"  # the last conv map, before the final pooling
    assert np.array_equal(first.maps, explainer(x[:10], batch_size=4).maps)
    np.testing.assert_allclose(first.maps, explainer(x[:10], batch_size=10).maps, atol=1e-5)
    single = explainer(x[0]).maps  # one image, without a batch axis
    np.testing.assert_allclose(first.maps[:1], single, atol=1e-5)
    proba = trained.predict(x[:10], verbose=0)["expression"]
    assert np.array_equal(first.targets, proba.argmax(1))
    np.testing.assert_allclose(first.outputs, proba.max(1), rtol=1e-5)


def test_a_chosen_class_is_explained_instead_of_the_predicted_one(trained, held_out) -> None:
    x, y = held_out
    explainer = Explainer(trained)
    wrong = (y[:8] + 2) % 4
    other = explainer(x[:8], target=wrong)
    assert np.array_equal(other.targets, wrong)
    assert not np.allclose(other.maps, explainer(x[:8]).maps)
    assert np.array_equal(explainer(x[:8], target=1).targets, np.ones(8, np.int64))


@pytest.mark.parametrize(
    ("name", "channels"), [("custom_cnn", 1), ("custom_cnn", 3), ("vgg16", 1), ("vgg16", 3)]
)
def test_grayscale_and_rgb_models_are_explained(name: str, channels: int) -> None:
    model = build_model(name, image_size=48, channels=channels)
    x = np.random.default_rng(0).uniform(0, 255, (3, 48, 48, channels)).astype(np.float32)
    maps = gradcam(model, x).maps
    assert maps.shape == (3, 48, 48)
    assert maps.min() >= 0.0 and maps.max() <= 1.0


@pytest.mark.parametrize("name", registry.list_models())
def test_every_registered_architecture_gives_a_heatmap_at_its_smallest_size(name: str) -> None:
    size = registry.get(name).min_size
    model = build_model(name, image_size=size, channels=3, heads=("expression", "arousal"))
    x = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    explainer = Explainer(model)
    cells = [int(s) for s in explainer.layer.split()[-1].split("x")]
    assert min(cells) >= 2  # a one-cell map cannot localise: the stage before is used
    expression, arousal = explainer(x), explainer(x, head="arousal")
    assert expression.maps.shape == arousal.maps.shape == (2, size, size)
    assert expression.maps.min() >= 0.0 and expression.maps.max() <= 1.0
    assert arousal.maps.min() >= -1.0 and arousal.maps.max() <= 1.0
    assert arousal.signed and not expression.signed


def test_a_model_trained_on_crops_is_explained_on_the_window_it_sees() -> None:
    """train_crop: the network sees the centre 44 of 48 px, so the map covers that window and
    the 2 px frame around it carries no heat."""
    model = build_model(
        "custom_cnn",
        image_size=48,
        channels=1,
        heads=("expression", "valence"),
        backbone_options={"train_crop": 44},
    )
    x = np.random.default_rng(2).uniform(0, 255, (3, 48, 48, 1)).astype(np.float32)
    for head in ("expression", "valence"):
        maps = gradcam(model, x, head=head).maps
        assert maps.shape == (3, 48, 48)
        frame = np.ones((48, 48), bool)
        frame[2:46, 2:46] = False
        assert np.all(maps[:, frame] == 0.0)
        assert np.abs(maps[:, ~frame]).max() > 0.0


def test_bad_requests_are_one_line_config_errors(trained) -> None:
    explainer = Explainer(trained)
    image = np.zeros((2, SIZE, SIZE, 1), np.float32)
    with pytest.raises(ConfigError, match="no 'arousal' head"):
        explainer(image, head="arousal")
    with pytest.raises(ConfigError, match=r"0\.\.3"):
        explainer(image, target=4)
    with pytest.raises(ConfigError, match="one per image"):
        explainer(image, target=[0, 1, 2])
    with pytest.raises(ConfigError, match="takes no target"):
        explainer(image, head="valence", target=0)
    with pytest.raises(ConfigError, match=r"\(N, 48, 48, 1\)"):
        explainer(np.zeros((2, 32, 32, 1)))
    inputs = keras.Input((8, 8, 1))
    foreign = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ConfigError, match=r"helpers\.models\.factory"):
        Explainer(foreign)


def test_normalise_keeps_no_evidence_at_zero_and_the_sign_when_asked() -> None:
    cam = np.array([[[-2.0, 1.0], [0.5, 0.0]], [[-1.0, -3.0], [0.0, 0.0]]])
    rectified = normalise(cam, signed=False)
    assert np.array_equal(rectified[0], [[0, 1], [0.5, 0]]) and not rectified[1].any()
    np.testing.assert_allclose(normalise(cam, signed=True)[1], [[-1 / 3, -1], [0, 0]])


def test_overlay_colours_the_region_only_and_stays_in_the_image() -> None:
    image = np.full((40, 60, 3), 128, np.uint8)
    out = overlay(image, np.ones((8, 8)), region=(50, -5, 20, 20))
    assert out.shape == image.shape and np.array_equal(image, np.full((40, 60, 3), 128))
    changed = np.any(out != image, axis=2)
    assert changed[:15, 50:].all() and not changed[15:].any() and not changed[:, :50].any()


def test_overlay_draws_heat_in_the_reports_colour_map() -> None:
    from matplotlib import colormaps

    from helpers.reporting import plots

    black = np.zeros((4, 4, 3), np.uint8)
    heat = np.array([[0.0, 0.5], [1.0, 1.0]])
    out = overlay(black, np.kron(heat, np.ones((2, 2))), strength=1.0)
    for value, pixel in ((0.5, out[0, 2]), (1.0, out[3, 3])):
        expected = np.rint(np.asarray(colormaps[plots.HEAT_CMAP](value)[:3]) * 255 * value)
        np.testing.assert_allclose(pixel, expected, atol=2)


# --------------------------------------------------------------------------- share on the face


def _square_landmarks(x0: float, y0: float, side: float) -> np.ndarray:
    """68 points on the outline of a square (a face whose hull is that square)."""
    t = np.linspace(0, 4, N_POINTS, endpoint=False)
    edge, f = np.floor(t).astype(int), t - np.floor(t)
    xs = np.select([edge == 0, edge == 1, edge == 2], [f, 1.0, 1 - f], 0.0)
    ys = np.select([edge == 0, edge == 1, edge == 2], [0.0, f, 1.0], 1 - f)
    return np.stack([x0 + xs * side, y0 + ys * side], axis=1).astype(np.float32)


def test_the_face_is_the_landmark_hull_in_model_pixels_or_the_image_minus_a_border() -> None:
    # A 96 px stored image, face from 24 to 72: at a 48 px input, from 12 to 36.
    mask, region = heatmaps.face_mask(_square_landmarks(24, 24, 48), 96, 96, 48)
    assert region == heatmaps.HULL
    assert mask[14:34, 14:34].all() and not mask[:10].any() and not mask[:, 38:].any()
    assert mask.mean() == pytest.approx((24 / 48) ** 2, abs=0.04)
    plain, region = heatmaps.face_mask(None, 48, 48, 48)
    assert region == heatmaps.CENTRE
    assert plain.mean() == pytest.approx((1 - 2 * heatmaps.FACE_BORDER) ** 2, abs=0.02)


def test_heat_share_counts_positive_heat_inside_the_mask() -> None:
    mask = np.zeros((3, 4, 4), bool)
    mask[:, :2] = True
    maps = np.zeros((3, 4, 4))
    maps[0, :2] = 1.0  # all inside
    maps[1] = 0.5  # spread evenly: the mask's area
    maps[2, 2:] = -1.0  # no positive heat
    share = heatmaps.heat_share(maps, mask)
    assert share[0] == 1.0 and share[1] == 0.5 and np.isnan(share[2])


def _predictions(folder: Path, n: int = 10, landmarks: bool = True) -> pd.DataFrame:
    """A predictions table like predict_table's, over stored 96 px RGB faces."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = folder / f"f{i}.png"
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(path)
        truth, pred = i % 4, (i % 4 if i < 6 else (i + 1) % 4)
        rows.append(
            {
                "id": f"f{i}",
                "image": str(path),
                "width": 96,
                "height": 96,
                "expression": truth,
                "expression_pred": pred,
                "confidence": 0.9 - i / 100,
                "valence": 0.1 * i - 0.5,
                "valence_pred": 0.0,
                "arousal": 0.2,
                "arousal_pred": 0.1,
                "landmarks": _square_landmarks(20, 20, 56) if landmarks else None,
            }
        )
    return pd.DataFrame(rows)


def test_examples_are_the_surest_correct_per_class_and_the_listed_mistakes(tmp_path) -> None:
    from helpers.evaluation.predictions import confident_mistakes

    table = _predictions(tmp_path)
    shown = heatmaps.select_examples(table, per_class=1, mistakes=3)
    correct = shown[shown["role"] == "correct"]
    assert sorted(correct["id"]) == ["f0", "f1", "f2", "f3"]  # the surest of each class
    assert list(shown.loc[shown["role"] == "mistake", "id"]) == list(
        confident_mistakes(table, n=3)["id"]
    )


def test_explained_predictions_give_the_metrics_block_and_survive_their_file(tmp_path) -> None:
    table = _predictions(tmp_path / "faces")
    model = build_model("custom_cnn", image_size=48, channels=3)
    seen = heatmaps.explain_predictions(model, table, n=5, per_class=1, mistakes=2, seed=0)
    assert seen["sampled"].sum() == 5 and set(seen["role"]) == {"correct", "mistake", ""}
    assert np.array_equal(seen["target"], seen["expression_pred"])
    block = heatmaps.summary(seen)
    assert block["region"] == heatmaps.HULL and block["n"] + block["n_without_heat"] == 5
    assert 0.0 <= block["on_face_share"] <= 1.0
    assert block["face_area_share"] == pytest.approx((28 / 48) ** 2, abs=0.05)
    json.dumps(block, allow_nan=False)  # goes into the strict metrics JSON as it is
    path = heatmaps.save_explained(seen, tmp_path / "explain" / "custom_cnn.npz")
    back = heatmaps.load_explained(path)
    assert list(back["id"]) == list(seen["id"]) and back.attrs == seen.attrs
    assert np.abs(np.stack(back["heatmap"]) - np.stack(seen["heatmap"])).max() <= 0.5 / 255 + 1e-6
    np.testing.assert_allclose(np.stack(back["landmarks"]), np.stack(seen["landmarks"]))
    assert heatmaps.summary(back) == block
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"broken\.npz"):
        heatmaps.load_explained(tmp_path / "broken.npz")


def _explained_from_a_zip(tmp_path: Path) -> tuple[Any, Path, Path]:
    """A run's heatmaps file whose faces were read from a zip: the model, the file, the zip."""
    import zipfile

    from helpers.core.images import make_uri

    table = _predictions(tmp_path / "faces", n=6)
    archive = tmp_path / "source.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for image in table["image"]:
            out.write(image, Path(image).name)
    table["image"] = [make_uri(archive, Path(image).name) for image in table["image"]]
    model = build_model("custom_cnn", image_size=48, channels=3)
    explained = heatmaps.explain_predictions(model, table, n=3, per_class=1, mistakes=1, seed=0)
    path = heatmaps.save_explained(explained, tmp_path / "run" / "explain" / "custom_cnn.npz")
    return model, path, archive


def test_heatmaps_of_a_run_whose_data_moved_are_read_with_data_or_refused_saying_so(
    tmp_path,
) -> None:
    """The panel one-liner on a copied run: the zip the run read is gone, so load_explained
    names it and the `data=` that fixes it; with `data=` every image is read from there."""
    import shutil

    from helpers.core.images import make_uri, read_image

    model, path, archive = _explained_from_a_zip(tmp_path)
    moved = Path(shutil.move(archive, tmp_path / "elsewhere.zip"))
    with pytest.raises(
        DataError, match=r"source\.zip: file not found.*data='/path/to/source\.zip'"
    ):
        heatmaps.load_explained(path)
    back = heatmaps.load_explained(path, data=moved)
    assert all(uri.startswith(make_uri(moved, "")) for uri in back["image"])
    assert [read_image(uri).shape for uri in back["image"]] == [(96, 96, 3)] * len(back)
    with pytest.raises(DataError, match=r"nothere\.zip: file not found"):
        heatmaps.load_explained(path, data=tmp_path / "nothere.zip")
    plain = heatmaps.save_explained(
        heatmaps.explain_predictions(model, _predictions(tmp_path / "files", n=4), n=2),
        tmp_path / "plain.npz",
    )
    with pytest.raises(ConfigError, match="data= repoints a zip"):
        heatmaps.load_explained(plain, data=moved)


def test_every_test_image_is_explained_a_chunk_at_a_time(tmp_path, monkeypatch) -> None:
    """n=None (the gpu profile: every test image) never holds more than a chunk of decoded
    images, and chunking changes no figure."""
    table = _predictions(tmp_path, n=10)
    model = build_model("custom_cnn", image_size=48, channels=3)
    whole = heatmaps.explain_predictions(model, table)
    seen_sizes = []
    call = Explainer.__call__

    def counted(self, images, *args, **kwargs):
        seen_sizes.append(len(images))
        return call(self, images, *args, **kwargs)

    monkeypatch.setattr(Explainer, "__call__", counted)
    monkeypatch.setattr(heatmaps, "EXPLAIN_CHUNK", 4)
    chunked = heatmaps.explain_predictions(model, table)
    assert seen_sizes == [4, 4, 2]
    assert list(chunked["id"]) == list(whole["id"])
    np.testing.assert_array_equal(chunked["target"], whole["target"])
    np.testing.assert_allclose(np.stack(chunked["heatmap"]), np.stack(whole["heatmap"]), atol=1e-6)
    np.testing.assert_allclose(chunked["on_face"], whole["on_face"])
    assert heatmaps.summary(chunked) == pytest.approx(heatmaps.summary(whole))


def test_without_landmarks_the_face_is_the_centre_and_the_summary_says_so(tmp_path) -> None:
    table = _predictions(tmp_path, n=4, landmarks=False)
    model = build_model("custom_cnn", image_size=32, channels=1)
    block = heatmaps.summary(heatmaps.explain_predictions(model, table))
    assert block["region"] == heatmaps.CENTRE and block["n"] + block["n_without_heat"] == 4


def test_a_model_without_an_expression_head_has_nothing_to_explain(tmp_path) -> None:
    table = _predictions(tmp_path, n=3)
    model = build_model("custom_cnn", image_size=32, channels=1, heads=("valence",))
    seen = heatmaps.explain_predictions(model, table)
    assert seen.empty and heatmaps.summary(seen)["on_face_share"] is None
    check_figure(plots.plot_gradcam_panel(seen), n_axes=1)
    assert heatmaps.explain_regression(model, table, n=2)["valence_map"].map(np.shape).tolist() == [
        (32, 32),
        (32, 32),
    ]


def test_the_comparison_table_gets_the_share_and_older_metrics_files_do_not() -> None:
    row = flatten_metrics(
        {"model": "m", "n": 3, "explain": {"on_face_share": 0.7, "face_area_share": 0.3}}
    )
    assert row["explain_on_face_share"] == 0.7 and row["explain_face_area_share"] == 0.3
    assert "explain_on_face_share" not in flatten_metrics({"model": "m", "n": 3})


def test_the_heatmap_figures_draw(tmp_path) -> None:
    table = _predictions(tmp_path)
    model = build_model("custom_cnn", image_size=48, channels=3)
    seen = heatmaps.explain_predictions(model, table, per_class=2, mistakes=4)
    check_figure(plots.plot_gradcam_grid(seen, title="custom_cnn"))
    check_figure(plots.plot_gradcam_panel(seen, title="custom_cnn"))
    signed = heatmaps.explain_regression(model, table, n=3)
    assert {"valence_map", "arousal_map"} <= set(signed.columns)
    check_figure(plots.plot_signed_heatmaps(signed))
    nothing = seen.iloc[0:0]
    for fig in (plots.plot_gradcam_grid(nothing), plots.plot_gradcam_panel(nothing, "m")):
        check_figure(fig, n_axes=1)


# --------------------------------------------------------------------------- the predictor


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> tuple[Path, Path]:
    """A saved model and a folder of two pre-cropped faces."""
    root = tmp_path_factory.mktemp("explain")
    model_path = root / "custom_cnn.keras"
    build_model("custom_cnn", image_size=48, channels=1).save(model_path)
    folder = root / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / name)
    return model_path, folder


def test_predict_explain_writes_a_heatmap_beside_each_annotated_face(faces, tmp_path) -> None:
    model_path, folder = faces
    out = tmp_path / "out"
    code = main(["--model", str(model_path), str(folder), "--out", str(out), "--no-detect",
                 "--annotate", "--explain", "--quiet"])  # fmt: skip
    assert code == 0
    written = sorted(p.name for p in (out / "annotated").iterdir())
    assert written == ["a.jpg", "a_gradcam.jpg", "b.jpg", "b_gradcam.jpg"]
    plain = np.asarray(Image.open(out / "annotated" / "a.jpg"), dtype=np.int16)
    heat = np.asarray(Image.open(out / "annotated" / "a_gradcam.jpg"), dtype=np.int16)
    assert plain.shape == heat.shape and np.abs(plain - heat).mean() > 5
    table = pd.read_csv(out / "predictions.csv")
    assert table["annotated"].tolist() == ["annotated/a.jpg", "annotated/b.jpg"]
    assert table["gradcam"].tolist() == ["annotated/a_gradcam.jpg", "annotated/b_gradcam.jpg"]


@pytest.mark.parametrize("how", ["tflite file", "tflite backend"])
def test_predict_explain_refuses_tflite_in_one_line_before_any_work(faces, tmp_path, capsys, how):
    model_path, folder = faces
    if how == "tflite file":
        model = tmp_path / "model.int8.tflite"
        model.write_bytes(b"not even read")
        args = ["--model", str(model)]
    else:
        args = ["--model", str(model_path), "--backend", "tflite"]
    out = tmp_path / "out"
    assert main([*args, str(folder), "--out", str(out), "--explain", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no gradients" in err and "--explain" in err
    assert not out.exists()


def test_predict_explain_needs_an_output_folder(faces, capsys) -> None:
    model_path, folder = faces
    assert main(["--model", str(model_path), str(folder), "--explain"]) == 2
    assert "--out" in capsys.readouterr().err


def test_grad_cam_on_another_keras_backend_is_one_line_and_leaves_no_folder(
    tmp_path, capsys, monkeypatch
):
    """Grad-CAM's tf.GradientTape needs TensorFlow: on JAX or PyTorch, Explainer raises a
    ConfigError and `--explain` exits 2 with one line, before any output folder is made."""
    model = build_model("custom_cnn", image_size=48, channels=1, heads=["expression"])
    path = tmp_path / "custom_cnn.keras"
    model.save(path)
    Image.fromarray(np.full((48, 48), 128, np.uint8)).save(tmp_path / "face.png")
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match=r"Grad-CAM needs the TensorFlow Keras backend; .* jax"):
        Explainer(model)
    out = tmp_path / "out"
    argv = ["--model", str(path), str(tmp_path / "face.png"), "--out", str(out), "--explain"]
    assert main([*argv, "--no-detect", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Grad-CAM needs the TensorFlow Keras backend" in err[0]
    assert not out.exists()


def test_the_report_draws_a_panel_or_says_why_it_cannot_for_a_run_whose_images_moved(
    tmp_path,
) -> None:
    """Notebook 06 on a copied run whose source zip is gone: one line naming the zip and the fix
    in place of the Grad-CAM panel, so the report is still made; a panel where the zip is."""
    import shutil

    from matplotlib.figure import Figure

    from helpers.reporting import plots

    _, path, archive = _explained_from_a_zip(tmp_path)
    assert isinstance(plots.gradcam_panel_or_note(path, "custom_cnn"), Figure)
    shutil.move(archive, tmp_path / "elsewhere.zip")
    note = plots.gradcam_panel_or_note(path, "custom_cnn")
    assert isinstance(note, str) and note.startswith("**custom_cnn**: no heatmaps drawn:")
    assert "source.zip: file not found" in note and "data=" in note
    missing = plots.gradcam_panel_or_note(tmp_path / "run" / "explain" / "vgg16.npz", "vgg16")
    assert missing == "**vgg16**: no heatmaps; run notebook 05 for it"


def test_the_heat_colours_are_made_once_and_cannot_be_changed() -> None:
    colours = heat_colours()
    assert heat_colours() is colours and colours.shape == (256, 3)
    assert not colours.flags.writeable
