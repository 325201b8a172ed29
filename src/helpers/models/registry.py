"""The one list of models: every architecture the project can build, by name, with its default
input size and training facts. Importing it does not import Keras, so option checks, the
`--models` list and error messages are instant.

Adding an architecture is one `register(ModelSpec(...))` entry: `builder` names a function that
takes Keras's application arguments (include_top, weights, input_shape, name) and returns the
feature extractor; `preprocess` names the function that turns raw 0-255 pixels into what it
expects. Both are "module:attribute" strings, imported only when a model is built.

`compared` (default True) puts the entry in every profile's default model list (smoke, cpu, gpu
and the others that do not name their models): `./run_all.sh` without --models trains and
scores it, which lengthens the main job and the notebook tests. `compared=False` keeps it opt-in
(`--models name`), as vggnet and efficientnetb0 are. A new entry may also want `reference=` (a
key of helpers.reporting.references, so methods.md cites its paper; without one, its list of
things to check names the architecture as uncited) and per-profile settings in
helpers.run.profiles (`per_model`: an image size, batch size or `export_tflite` for it).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from helpers.core.errors import ConfigError, did_you_mean

# Adam learning rate of the heads over a frozen pretrained backbone (the first phase).
PRETRAINED_LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class ModelSpec:
    """One architecture: how to build its feature extractor and feed it raw pixels."""

    name: str
    builder: str  # "module:function" with keras.applications' arguments
    preprocess: str  # "module:function" from raw 0-255 pixels to the input it wants
    preprocessing: str  # what `preprocess` does, in words for metadata and reports
    min_size: int  # smallest input side the architecture accepts
    default_image_size: int  # input side when a profile does not set one
    imagenet: bool = True  # ImageNet weights exist (keras.applications); takes RGB input
    # Adam learning rate a randomly initialised network of this kind trains at. VGG16 has no
    # BatchNorm: from scratch at 1e-3 it collapses to the majority class within an epoch.
    scratch_learning_rate: float = 1e-3
    compared: bool = True  # in every profile's default models (`./run_all.sh` without --models)
    builder_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"alpha": 0.35}
    reference: str | None = None  # the paper a methods section cites (helpers.reporting.references)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Make an architecture buildable by name: the single place one is declared."""
    _REGISTRY[spec.name] = spec
    return spec


def list_models(compared_only: bool = False) -> list[str]:
    """Registered names in registration order (compared_only: the default comparison)."""
    return [name for name, spec in _REGISTRY.items() if spec.compared or not compared_only]


def check_names(names: str | Iterable[object], given_as: str = "") -> None:
    """One ConfigError for names the registry lacks (a bare string is one name), worded the
    same wherever a model name is given (runner, profile, TrainConfig, notebook 05): the name,
    the valid names, the closest."""
    if isinstance(names, str):  # one name, not its characters
        names = [names]
    known = list_models()
    unknown = [name for name in names if not isinstance(name, str) or name not in known]
    if unknown:
        compared = list_models(compared_only=True)  # the compared four first, in their order
        listed = compared + sorted(set(known) - set(compared))
        where = f"{given_as}: " if given_as else ""
        raise ConfigError(
            f"{where}unknown model {', '.join(repr(name) for name in unknown)}; "
            f"valid names: {', '.join(listed)}" + did_you_mean(unknown[0], known)
        )


def get(name: str) -> ModelSpec:
    """The entry for a name, or one ConfigError listing the valid names."""
    check_names([name])
    return _REGISTRY[name]


def default_image_size(name: str) -> int:
    """The input side a model is built at when nothing else says."""
    return get(name).default_image_size


def default_learning_rate(name: str, pretrained: bool) -> float:
    """The learning rate a model trains at when none is given: its from-scratch rate, or the
    head warm-up rate over pretrained weights (known only once the weights are loaded)."""
    return PRETRAINED_LEARNING_RATE if pretrained else get(name).scratch_learning_rate


def function(name: str, part: str) -> Any:
    """The function an entry's `builder` or `preprocess` names, or one ConfigError naming the
    entry, the field and what is wrong, so a mistyped entry is not a bare AttributeError from
    deep inside a build."""
    reference = getattr(get(name), part)
    where = f"registry entry {name!r}: {part} {reference!r}"
    module, colon, attribute = reference.partition(":")
    if not (colon and module and attribute):
        raise ConfigError(f"{where} should be 'module:function'")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import {module} ({exc})") from None
    except AttributeError:
        raise ConfigError(f"{where}: module {module} has no {attribute!r}") from None
    if not callable(found):
        raise ConfigError(f"{where} is not a function ({type(found).__name__})")
    return found


def check(name: str) -> None:
    """Both functions an entry names exist (imports their modules: Keras for most), so a
    mistyped entry is refused before a run does any work."""
    for part in ("builder", "preprocess"):
        function(name, part)


_CAFFE = "(caffe: RGB->BGR, ImageNet mean subtracted)"
register(
    ModelSpec(
        "custom_cnn",
        "helpers.models.backbones:custom_cnn",
        "helpers.models.backbones:rescale_unit",
        "pixels / 255 -> [0, 1]",
        min_size=16,
        default_image_size=48,
        imagenet=False,
    )
)
register(
    ModelSpec(
        "vgg16",
        "keras.applications:VGG16",
        "keras.applications.vgg16:preprocess_input",
        f"keras.applications.vgg16.preprocess_input {_CAFFE}",
        min_size=32,
        default_image_size=224,
        scratch_learning_rate=1e-4,
        reference="simonyan2015very",
    )
)
register(
    ModelSpec(
        "resnet50",
        "keras.applications:ResNet50",
        "keras.applications.resnet50:preprocess_input",
        f"keras.applications.resnet50.preprocess_input {_CAFFE}",
        min_size=32,
        default_image_size=224,
        reference="he2016deep",
    )
)
register(
    ModelSpec(
        "mobilenetv2",
        "keras.applications:MobileNetV2",
        "keras.applications.mobilenet_v2:preprocess_input",
        "keras.applications.mobilenet_v2.preprocess_input (tf: pixels / 127.5 - 1)",
        min_size=32,
        default_image_size=224,
        reference="sandler2018mobilenetv2",
    )
)
# The FER-2013 VGGNet of Khaireddin & Chen (2021): the custom network, twice as wide. Used by
# the fer2013-gpu profile; too slow for the default comparison on a CPU.
register(
    ModelSpec(
        "vggnet",
        "helpers.models.backbones:custom_cnn",
        "helpers.models.backbones:rescale_unit",
        "pixels / 255 -> [0, 1]",
        min_size=16,
        default_image_size=48,
        imagenet=False,
        compared=False,
        builder_kwargs={"widths": (64, 128, 256, 512)},
        reference="khaireddin2021facial",
    )
)
# Registered to show what adding an architecture takes; not in the default comparison.
register(
    ModelSpec(
        "efficientnetb0",
        "keras.applications:EfficientNetB0",
        "keras.applications.efficientnet:preprocess_input",
        "keras.applications.efficientnet.preprocess_input (identity: the backbone rescales itself)",
        min_size=32,
        default_image_size=224,
        compared=False,
        reference="tan2019efficientnet",
    )
)
