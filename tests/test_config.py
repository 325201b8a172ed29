"""Profiles and run folders: the parameters every notebook shares."""

import pytest

from helpers.core.errors import ConfigError
from helpers.core.run_folder import RunFolder
from helpers.run import profiles as config
from helpers.train.config import settings_table


def test_every_profile_resolves_with_the_documented_keys():
    for name in config.PROFILES:
        values = config.resolve(name)
        for key in ("image_size", "epochs", "batch_size", "demo_n", "models"):
            assert key in values


def test_every_profile_names_a_test_time_augmentation_the_evaluation_knows():
    """A typo in a profile's tta would fail only in notebook 05, after the training."""
    from helpers.inference.tta import check_tta_setting

    for name, profile in config.PROFILES.items():
        for model in (None, *profile.per_model):
            setting = config.resolve(name, model)["tta"]
            assert check_tta_setting(setting) == setting, (name, model)
    # The main job evaluates each model with the mode that leads on its validation split.
    assert config.resolve("cpu")["tta"] == "auto"


def test_every_per_model_key_is_a_setting_something_reads():
    """A per-model key that is neither a profile field nor a training setting would be
    ignored without a word (a typo like "export_tflte" would keep the export on)."""
    import dataclasses

    from helpers.train.config import TrainConfig

    known = {f.name for f in dataclasses.fields(config.Profile)} | {
        f.name for f in dataclasses.fields(TrainConfig)
    }
    for name, profile in config.PROFILES.items():
        for model, values in profile.per_model.items():
            assert set(values) <= known, (name, model, sorted(set(values) - known))


def test_a_per_model_export_setting_gives_way_to_the_notebook_parameter():
    assert config.resolve("smoke", "resnet50")["export_tflite"] is False
    assert config.resolve("smoke", "custom_cnn")["export_tflite"] is True
    assert config.resolve("smoke", "resnet50", export_tflite=True)["export_tflite"] is True
    with pytest.raises(ConfigError, match="export_tflite"):
        config.resolve("smoke", "resnet50", export_tflite="yes")


def test_unknown_profile_lists_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        config.get_profile("fast")
    assert all(name in str(err.value) for name in ("smoke", "cpu", "gpu", "fer2013-cpu"))


def test_ferplus_profile_trains_the_fer2013_recipe():
    """Same faces, other labels, one recipe: FER+ differs from FER-2013's hour in its name,
    description and the data set it names alone (its test split comes from the shares, since
    its zip has none)."""
    fer, ferplus = (config.get_profile(n).to_dict() for n in ("fer2013-cpu", "ferplus-cpu"))
    data_set = {"data_reader", "data_name", "data_reference"}
    assert {k for k in fer if fer[k] != ferplus[k]} == {"name", "description", *data_set}
    assert ferplus["tta"] == "auto"
    assert ferplus["augment"] == {
        "dropout_p": 0.5,
        "dropout_max_holes": 1,
        "dropout_size": (0.1, 0.3),
    }
    assert config.resolve("ferplus-cpu", "custom_cnn")["time_budget_minutes"] == 55.0
    assert config.resolve("ferplus-cpu")["test_share"] > 0  # FER+ trainval has no test split


def test_fer_recipe_reaches_the_training_settings():
    """The hour underfits: the FER custom CNN trains with less regularisation than the default,
    and the other architectures keep theirs."""
    for profile in ("fer2013-cpu", "ferplus-cpu"):
        cnn = config.train_config(profile, "custom_cnn")
        assert (cnn.label_smoothing, cnn.dropout, cnn.lr_schedule) == (0.0, 0.1, "cosine")
        assert (cnn.pooling, cnn.time_budget_minutes) == ("avg", 55.0)
        assert cnn.backbone_options["block_dropout"] == 0.05  # half the default's
        assert cnn.backbone_options["train_crop"] == 44  # random 44 px windows of 48
    assert config.train_config("fer2013-cpu", "vgg16").label_smoothing == 0.1


def test_fer_architectures_train_without_dropout_and_resnet50_along_a_cosine():
    """In 8 minutes from scratch they underfit: the head's dropout (the library's default) only
    slowed them; ResNet50, two epochs in the budget, ends at a low rate; the others keep a
    constant rate, under which they fitted their training faces less."""
    for profile in ("fer2013-cpu", "ferplus-cpu"):
        for model in ("vgg16", "resnet50", "mobilenetv2", "efficientnetb0"):
            cfg = config.train_config(profile, model)
            assert cfg.dropout == 0.0, (profile, model)
            assert cfg.lr_schedule == ("cosine" if model == "resnet50" else "plateau"), model
    assert config.train_config("fer2013-cpu", "custom_cnn").dropout == 0.1
    assert config.train_config("smoke", "vgg16").dropout > 0  # the library's default elsewhere


def test_fer_architectures_train_in_bfloat16_only_where_it_is_the_cheaper_step():
    """On a CPU with AMX, mixed bfloat16 runs VGG16 2.7 times and ResNet50 1.15 times as fast,
    but MobileNetV2 and EfficientNetB0 slower (depthwise convolutions)."""
    policies = {
        model: config.train_config("fer2013-cpu", model).mixed_precision
        for model in ("custom_cnn", "vgg16", "resnet50", "mobilenetv2", "efficientnetb0")
    }
    assert policies == {
        "custom_cnn": "bfloat16",
        "vgg16": "bfloat16",
        "resnet50": "bfloat16",
        "mobilenetv2": "auto",
        "efficientnetb0": "auto",
    }
    assert config.train_config("ferplus-cpu", "custom_cnn").mixed_precision == "bfloat16"
    # Each takes the test-time augmentation that leads on its validation split.
    tta = {m: config.resolve("fer2013-cpu", m)["tta"] for m in policies}
    assert tta == dict.fromkeys(policies, "auto")


def test_fer_hour_trains_a_lighter_network_where_bfloat16_falls_back_to_float32():
    """On a CPU with AVX2 alone the float32 step holds 22 epochs in the hour; three quarters of
    the widths hold 39 and lead (benchmarks/RESULTS.md): the same windows and dropout, only the
    widths change, and only there."""
    for profile in ("fer2013-cpu", "ferplus-cpu"):
        cnn = config.train_config(profile, "custom_cnn")
        assert "widths" not in cnn.backbone_options  # the registry's (32, 64, 128, 256)
        float32 = cnn.in_float32().backbone_options
        assert float32 == {**cnn.backbone_options, "widths": (24, 48, 96, 192)}
    # A network given by the caller trains as given, on any CPU.
    own = config.train_config("fer2013-cpu", "custom_cnn", backbone_options={"convs": 1})
    assert own.in_float32().backbone_options == {"convs": 1}


def test_main_job_trains_in_bfloat16_only_the_model_it_speeds_up():
    """At the main job's sizes (32-48 px, 3 channels) bfloat16 runs VGG16 1.5 times as fast on
    a CPU with AMX, but ResNet50, MobileNetV2 and the custom CNN slower."""
    policies = {
        m: config.train_config("cpu", m).mixed_precision for m in config.PROFILES["cpu"].models
    }
    assert policies == {m: "bfloat16" if m == "vgg16" else "auto" for m in policies}


def test_main_job_trains_the_same_epochs_on_any_machine():
    """No time budget may cut a model short on a slower machine or hour, so the main job's
    models and figures are the same wherever it runs. The custom CNN and ResNet50 anneal their
    rate over their fixed epochs."""
    for model in config.PROFILES["cpu"].models:
        cfg = config.train_config("cpu", model)
        assert cfg.time_budget_minutes is None, model
    assert config.train_config("cpu", "custom_cnn").epochs == 5
    for model in ("custom_cnn", "resnet50"):
        assert config.train_config("cpu", model).lr_schedule == "cosine"


def test_main_job_trains_every_model_without_dropout():
    """In minutes from scratch each network still underfits, and dropout only slowed it
    (ResNet50: validation accuracy 0.862 in 10 epochs without, 0.724 in 12 with); elsewhere
    the library's default stays."""
    for model in config.PROFILES["cpu"].models:
        assert config.train_config("cpu", model).dropout == 0.0, model
    assert config.train_config("cpu", "custom_cnn").backbone_options == {"block_dropout": 0.0}
    assert config.train_config("smoke", "custom_cnn").dropout == 0.3
    assert config.train_config("smoke", "custom_cnn").backbone_options is None


def test_main_job_imagenet_architectures_train_on_the_images_as_they_are():
    """In minutes from scratch, augmentation per batch held MobileNetV2 and ResNet50 under 0.5
    macro-F1; the custom CNN, which gained from it, keeps it, and so do the FER profiles."""
    for model in ("vgg16", "resnet50", "mobilenetv2"):
        assert config.train_config("cpu", model).online_augment is False
        assert config.train_config("fer2013-cpu", model).online_augment is False
    assert config.train_config("fer2013-cpu", "efficientnetb0").online_augment is False
    assert config.train_config("cpu", "custom_cnn").online_augment is True
    assert config.train_config("fer2013-cpu", "custom_cnn").online_augment is True
    assert config.train_config("cpu", "resnet50", online_augment=True).online_augment is True


def test_overrides_win_and_none_means_profile_default():
    values = config.resolve("smoke", epochs=3, image_size=None)
    assert values["epochs"] == 3
    assert values["image_size"] == config.PROFILES["smoke"].image_size


def test_override_of_the_wrong_type_is_refused():
    with pytest.raises(ConfigError, match="epochs"):
        config.resolve("smoke", epochs="three")


def test_notebook_04_refuses_an_image_size_its_backbone_cannot_take_before_the_fit():
    with pytest.raises(ConfigError) as caught:
        config.train_config("smoke", "vgg16", image_size=16)  # notebook 04's settings cell
    assert str(caught.value) == (
        "TrainConfig.image_size must be an integer >= 32 for vgg16 (got 16)"
    )
    assert config.train_config("smoke", "custom_cnn", image_size=16).image_size == 16


def test_model_names_are_checked_before_any_work():
    assert config.parse_models("custom_cnn, vgg16") == ["custom_cnn", "vgg16"]
    assert config.parse_models("custom_cnn,custom_cnn,vgg16") == ["custom_cnn", "vgg16"]
    with pytest.raises(ConfigError, match="resnet5"):
        config.parse_models("resnet5")
    with pytest.raises(ConfigError):
        config.parse_models(" , ")


def test_a_mistyped_model_name_is_answered_with_the_closest_names():
    """Notebook 04's `model` and run_all's --models, as run_all's --set answers a typo."""
    from helpers.models import registry
    from helpers.train.config import TrainConfig

    # one wording wherever a model name is given: the name, the valid names, the closest
    same = r"unknown model 'mobilenet_v2'; valid names: custom_cnn, .*; did you mean mobilenetv2\?$"
    with pytest.raises(ConfigError, match=r"^TrainConfig.model: " + same):
        TrainConfig(model="mobilenet_v2")
    with pytest.raises(ConfigError, match="^--models: " + same):
        config.parse_models("custom_cnn,mobilenet_v2")
    with pytest.raises(ConfigError, match="^" + same):
        registry.get("mobilenet_v2")
    with pytest.raises(ConfigError, match=r"; did you mean resnet50\?$"):
        registry.get("resnet_50")
    with pytest.raises(ConfigError, match=r"valid names: [a-z0-9_, ]+$"):  # nothing close: no guess
        TrainConfig(model="transformer")


def test_new_run_dirs_never_collide(tmp_path):
    dirs = {RunFolder.new(tmp_path) for _ in range(3)}
    assert len(dirs) == 3 and all(d.root.is_dir() for d in dirs)


def test_latest_run_dir_picks_the_newest_with_records(tmp_path):
    older, newer, empty = (
        tmp_path / n for n in ("20260101-000000", "20260102-000000", "20260103-000000")
    )
    for d in (older, newer, empty):
        d.mkdir()
    for d in (older, newer):
        (d / "records.parquet").write_bytes(b"x")
    assert RunFolder.latest(tmp_path) == newer
    with pytest.raises(ConfigError, match="notebook 01"):
        RunFolder.latest(tmp_path / "nothing-here")


def test_demo_zip_name_says_how_it_was_made():
    p = config.demo_zip_path("smoke", seed=3)
    assert p.name == "affectnet_demo_n320_px96_seed3.zip"


def test_the_settings_table_shows_what_a_run_changes_beside_the_defaults():
    cfg = config.train_config(
        "cpu",
        "custom_cnn",
        heads=("expression", "landmarks"),
        backbone_options={"widths": (8, 16, 32, 64)},
    )
    table = settings_table(cfg).set_index("setting")
    assert table.loc["epochs"].tolist() == ["5", "10"]
    assert table.loc["loss_weights", "value"] == "landmarks: 50.0"
    assert table.loc["heads"].tolist() == [
        "expression, landmarks",
        "expression, valence, arousal, landmarks",
    ]
    assert table.loc["backbone_options", "value"] == "widths: [8, 16, 32, 64]"
    assert "batch_size" not in table.index  # the default, so not shown
    assert not {"model", "profile", "verbose"} & set(table.index)


def test_the_robust_fer_profile_is_the_fer_hour_with_noise_and_blur() -> None:
    fer, robust = (config.get_profile(n).to_dict() for n in ("fer2013-cpu", "fer2013-cpu-robust"))
    differs = {k for k in fer if fer[k] != robust[k]}
    assert differs == {"name", "description", "augment"}
    assert robust["augment"] == {**fer["augment"], "noise_p": 0.3, "blur_p": 0.2}
    trained = [
        {k: v for k, v in config.train_config(n, "custom_cnn").to_dict().items() if k != "profile"}
        for n in ("fer2013-cpu", "fer2013-cpu-robust")
    ]
    assert trained[0] == trained[1]  # the same network, budget and schedule


def test_the_smoke_profile_exports_the_custom_cnn_and_mobilenetv2_only(monkeypatch):
    """A rule, not a list of the large backbones: an opt-in entry, or one added to the
    registry, is not exported by the smoke profile (a DenseNet121 export takes minutes)."""
    from dataclasses import replace

    from helpers.models import registry

    exported = {m for m in registry.list_models() if config.resolve("smoke", m)["export_tflite"]}
    assert exported == {"custom_cnn", "mobilenetv2"}
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # undone after the test
    registry.register(replace(registry.get("resnet50"), name="densenet121"))
    assert config.resolve("smoke", "densenet121")["export_tflite"] is False
    assert config.resolve("smoke", "densenet121", export_tflite=True)["export_tflite"] is True
    assert config.resolve("cpu", "densenet121")["export_tflite"] is True
