"""The registry is the one list of models: names, default sizes and learning rates, known
without importing Keras, and every name in it builds."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers.core.errors import ConfigError
from helpers.models import registry
from helpers.run import profiles


def test_importing_the_registry_and_profiles_does_not_import_keras():
    code = (
        "import sys, helpers.models.registry, helpers.run.profiles as p\n"
        "p.parse_models('custom_cnn,efficientnetb0'); p.resolve('gpu', 'vgg16')\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_default_model_list_is_the_registry_entries_not_marked_compared_false():
    """The default comparison is derived from the registry, so a new entry needs no list edited:
    one left with `compared` joins every profile's default models, one with compared=False does
    not (it stays opt-in); the entries marked so here are the registry's example and vggnet."""
    compared = registry.list_models(compared_only=True)
    assert compared == [name for name in registry.list_models() if registry.get(name).compared]
    assert {"vggnet", "efficientnetb0"}.isdisjoint(compared) and "custom_cnn" in compared
    assert profiles.get_profile("cpu").models == tuple(compared)
    code = (  # a fresh process: profiles read the registry when they are imported
        "from dataclasses import replace\n"
        "from helpers.models import registry as r\n"
        "spec = r.get('mobilenetv2')\n"
        "r.register(replace(spec, name='joins'))\n"
        "r.register(replace(spec, name='opt_in', compared=False))\n"
        "from helpers.run import profiles\n"
        "for name in ('smoke', 'cpu', 'gpu'):\n"
        "    models = profiles.get_profile(name).models\n"
        "    assert 'joins' in models and 'opt_in' not in models, (name, models)\n"
        "assert 'opt_in' in r.list_models()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_unknown_name_is_one_error_listing_the_valid_names():
    with pytest.raises(
        ConfigError, match="unknown model 'alexnet'; valid names: custom_cnn, vgg16"
    ):
        registry.get("alexnet")
    with pytest.raises(ConfigError, match="efficientnetb0"):
        profiles.parse_models("custom_cnn,alexnet")
    with pytest.raises(ConfigError, match=r"^unknown model 'alexnet'; valid names: "):
        registry.check_names("alexnet")  # one name, not 'a', 'l', 'e', ...
    registry.check_names("custom_cnn")


def test_a_profile_without_an_image_size_uses_each_models_default():
    assert profiles.resolve("gpu", "custom_cnn")["image_size"] == 48
    assert profiles.resolve("gpu", "resnet50")["image_size"] == 224
    assert profiles.resolve("smoke", "resnet50")["image_size"] == 48  # the profile decides
    assert profiles.resolve("cpu", "vgg16")["image_size"] == 32  # its per-model entry


def test_default_learning_rates_come_from_the_entry():
    assert registry.default_learning_rate("vgg16", pretrained=False) == 1e-4
    assert registry.default_learning_rate("resnet50", pretrained=False) == 1e-3
    assert (
        registry.default_learning_rate("vgg16", pretrained=True)
        == registry.PRETRAINED_LEARNING_RATE
    )


def test_every_entry_names_a_builder_and_a_preprocessing_that_exist():
    for name in registry.list_models():
        spec = registry.get(name)
        assert callable(registry.function(name, "builder"))
        assert callable(registry.function(name, "preprocess"))
        assert spec.min_size <= spec.default_image_size


def test_a_wider_custom_network_is_one_entry_and_the_fer_gpu_recipe_uses_it():
    from helpers.data.augment import AugmentConfig
    from helpers.models.factory import build_model

    model = build_model("vggnet", image_size=48, channels=1, heads=("expression",), n_classes=7)
    widths = [
        layer.filters for layer in model.get_layer("backbone").layers if hasattr(layer, "filters")
    ]
    assert widths == [64, 64, 128, 128, 256, 256, 512, 512]
    cfg = profiles.train_config("fer2013-gpu", "vggnet")
    assert (cfg.optimizer, cfg.learning_rate, cfg.lr_schedule) == ("sgd", 0.02, "cosine")
    assert (cfg.batch_size, cfg.checkpoint_metric) == (128, "accuracy")
    params = profiles.resolve("fer2013-gpu", "vggnet")
    assert params["tta"] == "tencrop" and params["image_size"] == 48
    assert AugmentConfig.from_dict(params["augment"]).dropout_p == 0.5  # random erasing on


def test_every_shipped_architecture_but_the_projects_own_network_cites_its_paper():
    # methods.md describes custom_cnn in full; any other entry is named by its paper
    uncited = [
        name
        for name in registry.list_models()
        if not registry.get(name).reference
        and not registry.get(name).builder.endswith(":custom_cnn")
    ]
    assert uncited == []


def _mistyped(monkeypatch, builder="keras.applications:DenseNet12"):
    """A registry entry whose builder names nothing, as a typo in a new entry leaves it."""
    from dataclasses import replace

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # undone after the test
    registry.register(replace(registry.get("mobilenetv2"), name="badnet", builder=builder))


def test_a_mistyped_entry_is_one_error_naming_the_entry_and_its_field(monkeypatch):
    _mistyped(monkeypatch)
    expected = (
        "registry entry 'badnet': builder 'keras.applications:DenseNet12': module "
        "keras.applications has no 'DenseNet12'"
    )
    with pytest.raises(ConfigError) as error:
        registry.check("badnet")
    assert str(error.value) == expected
    _mistyped(monkeypatch, builder="keras.aplications:DenseNet121")
    with pytest.raises(ConfigError, match=r"builder 'keras\.aplications:DenseNet121': cannot"):
        registry.check("badnet")
    _mistyped(monkeypatch, builder="keras.applications.DenseNet121")
    with pytest.raises(ConfigError, match="should be 'module:function'"):
        registry.check("badnet")
    registry.check("mobilenetv2")  # a good entry passes


def test_notebook_04s_settings_refuse_a_mistyped_entry_before_training(monkeypatch):
    """Its settings cell builds the TrainConfig: the entry is checked there, not by the fit."""
    from helpers.train.config import TrainConfig

    _mistyped(monkeypatch)
    with pytest.raises(ConfigError, match="registry entry 'badnet': builder"):
        TrainConfig(model="badnet")
