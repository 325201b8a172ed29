"""--set values checked before any work, by the checks the notebooks themselves run on them: a
bad value is refused in a second, not after hours of the stages before the one that reads it."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from helpers.core.errors import ConfigError
from helpers.run import profiles


def profile_parameters(notebook: str) -> tuple[str, ...]:
    """The parameters a profile gives where the notebook's are None: those its parameters cell
    sets to None that name a profile field (the notebook passes them to profiles.resolve, which
    checks their types), read from the notebook, so a new one is checked as soon as it is there."""
    return _profile_parameters(_notebooks_dir() / f"{notebook}.ipynb")


@functools.lru_cache(maxsize=16)
def _profile_parameters(path: Path) -> tuple[str, ...]:
    """profile_parameters of the notebook at `path`, read once (a run checks one stage per
    model of the same notebook)."""
    import papermill as pm

    declared = pm.inspect_notebook(str(path))
    fields = {f.name for f in dataclasses.fields(profiles.Profile)}
    return tuple(n for n, p in declared.items() if p["default"] == "None" and n in fields)


def _given(values: Mapping[str, Any], notebook: str) -> dict[str, Any]:
    """The values of the notebook's profile parameters that were set (None keeps the profile's,
    as in the notebook)."""
    names = profile_parameters(notebook)
    return {name: values[name] for name in names if values.get(name) is not None}


def check_augment(profile: str, model: str | None, values: Mapping[str, Any]) -> None:
    """Notebook 03: split shares and balancing as the profile resolves them, the augmentation
    fields over the profile's, the augment mode and the copies' image format."""
    from helpers.data import augment  # albumentations and OpenCV: only when there is a value

    resolved = profiles.resolve(profile, **_given(values, "03_augment"))
    augment.check_balance(resolved["balance"])
    if "augment" in values:
        extra = values["augment"]
        if not isinstance(extra, Mapping):
            raise ConfigError(f"augment must be a dict of AugmentConfig fields, got {extra!r}")
        augment.AugmentConfig.from_dict({**resolved["augment"], **extra})
    if "augment_mode" in values:
        augment.check_mode(values["augment_mode"])
    if "image_format" in values:
        augment.check_image_format(values["image_format"])


def check_train(profile: str, model: str | None, values: Mapping[str, Any]) -> None:
    """Notebook 04: the TrainConfig it builds from the profile and its parameters, and the
    weights and their fallback (a file path is read from the notebooks' folder, where the kernel
    runs). Its numbers first, before Keras loads (tens of seconds on a busy CPU): a typo such as
    learning_rate=abc is refused at once."""
    from helpers.train import limits

    limits.check_numbers({k: v for k, v in values.items() if v is not None})
    from helpers.models import factory  # Keras: seconds, so only when there is a value
    from helpers.train.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in values.items() if k in fields}
    profiles.train_config(profile, model or "custom_cnn", **overrides)
    weights, fallback = values.get("weights"), values.get("weights_fallback")
    with contextlib.chdir(_notebooks_dir()):
        if weights not in (None, "imagenet"):  # as the model's builder checks it in notebook 04
            factory.check_weights_path(weights, f"{model or 'the model'} weights")
        if fallback is not None:
            factory.check_fallback(fallback, model or "the model")


def check_evaluate(profile: str, model: str | None, values: Mapping[str, Any]) -> None:
    """Notebook 05: the profile's values where a parameter is None, and its parameters as its
    settings cell checks them (a path read from the notebooks' folder, where the kernel runs)."""
    from helpers.evaluation import scoring  # Keras-free, but pandas and scikit-learn: only here

    resolved = profiles.resolve(profile, model, **_given(values, "05_evaluate"))
    own = {k: v for k, v in values.items() if k in scoring.PARAMETERS}
    with contextlib.chdir(_notebooks_dir()):
        scoring.check_parameters(resolved, **own)


def check_predict(profile: str, model: str | None, values: Mapping[str, Any]) -> None:
    """Notebook 07: its own photos exist (read from the notebooks' folder, where the kernel
    runs)."""
    from helpers.inference import gallery  # OpenCV: only when there is a value

    if values.get("photos"):
        with contextlib.chdir(_notebooks_dir()):
            gallery.own_photos(values["photos"])


def _notebooks_dir() -> Path:
    """Where the notebooks run (their kernels' working folder), read now so tests can point it."""
    from helpers.core import paths

    return paths.NOTEBOOKS_DIR


def check_extract(profile: str, model: str | None, values: Mapping[str, Any]) -> None:
    """Notebook 01: reader_options names options of the reader given (or of some reader)."""
    from helpers.data import datasets

    if "reader_options" in values:
        datasets.check_reader_options(values["reader_options"], values.get("reader") or None)


# By notebook (file stem): the notebooks whose parameters have checks of their own.
CHECKS: dict[str, Callable[[str, str | None, Mapping[str, Any]], None]] = {
    "01_extract": check_extract,
    "03_augment": check_augment,
    "04_train": check_train,
    "05_evaluate": check_evaluate,
    "07_predict": check_predict,
}


def check_values(profile: str, notebook: str, model: str | None, values: Mapping[str, Any]
                 ) -> None:  # fmt: skip
    """The ConfigError a notebook would raise over these --set values, raised now."""
    check = CHECKS.get(notebook)
    if check is not None and values:
        check(profile, model, values)
