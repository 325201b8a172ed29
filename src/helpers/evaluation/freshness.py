"""Which training of a model a metrics JSON describes: notebook 05 records the model file's
sha256 and its card's `finished_at`, so a model trained again afterwards (notebook 04 rerun by
hand) is told apart from the one that was scored. Both are read from the files' contents, so a
run folder copied or moved elsewhere still matches; file times would not."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from helpers.core import progress, trained
from helpers.core.errors import DataError, did_you_mean
from helpers.core.jsonio import read_json
from helpers.core.run_folder import RunFolder

KEY = trained.KEY
file_sha256 = trained.file_sha256  # one digest (and cache) for notebook 05 and the predictor


def training_of(run_dir: str | os.PathLike, model: str) -> dict[str, Any]:
    """What identifies the trained model now in the run folder, for its metrics JSON."""
    run = RunFolder(run_dir)
    path = run.model_path(model)
    return {
        "model_sha256": file_sha256(path) if path.is_file() else None,
        "card_finished_at": run.card_finished_at(model),
    }


def _file_name(model: str, dataset: str | None) -> str:
    """metrics/<model>.json, or metrics/<model>.<dataset>.json of an external test set."""
    return f"metrics/{model}.{dataset}.json" if dataset else f"metrics/{model}.json"


def _note(model: str, files: list[str]) -> str:
    """The sentence naming the metrics files of an earlier training and the next step."""
    named = files[0] if len(files) == 1 else ", ".join(files[:-1]) + f" and {files[-1]}"
    verb = "describes" if len(files) == 1 else "describe"
    return (
        f"{named} {verb} an earlier training of {model}: run notebook 05 again (model = '{model}')"
    )


def stale_note(
    run_dir: str | os.PathLike,
    model: str,
    scores: Mapping[str, Any],
    dataset: str | None = None,
) -> str | None:
    """A sentence when a metrics JSON (the test split's, or external test set `dataset`'s)
    scored another training of the model than the one now in the run folder; None when they
    match, or when the metrics (older ones) recorded nothing."""
    if trained.same_training(RunFolder(run_dir), model, scores) is not False:
        return split_note(run_dir, model)
    return _note(model, [_file_name(model, dataset)])


def split_note(run_dir: str | os.PathLike, model: str) -> str | None:
    """A sentence when the model now in the run folder trained on another split than the one
    splits.parquet holds (notebook 03 ran again since): its test faces may be faces it trained
    on, so it is neither scored nor ranked; None when they match or it cannot be told."""
    if trained.trained_on_split(RunFolder(run_dir), model) is not False:
        return None
    return (
        f"{model} was trained on another split than splits.parquet now holds (notebook 03 ran "
        f"again since): train it again with notebook 04 (model = '{model}'), then run notebook 05"
    )


def training_note(run_dir: str | os.PathLike, model: str) -> str | None:
    """A sentence when the model now in the run folder trained on other training faces or
    augmentation than notebook 03 now leaves (it ran again on the same split): its test
    figures hold, but what the report says of its training data would not; None otherwise."""
    from helpers.train.card import trained_on_training_data  # Keras: only when asked

    if trained_on_training_data(RunFolder(run_dir), model) is not False:
        return None
    return (
        f"{model} was trained on other training faces or augmentation than train.parquet and "
        f"augment.json now hold (notebook 03 ran again since): its test figures stand, but the "
        f"report describes augment.json's; train it again with notebook 04 (model = '{model}') "
        f"to match"
    )


def stale_notes(run_dir: str | os.PathLike) -> dict[str, str]:
    """Each model with a metrics file (the test split's or any external test set's) describing
    an earlier training, with one sentence naming those files."""
    run = RunFolder(run_dir)
    stale: dict[str, list[str]] = {}
    for dataset in [None, *run.external_datasets()]:
        for path in run.metrics_files(dataset):
            scores = read_json(path)
            model = str(scores.get("model") or path.name.partition(".")[0])
            if trained.same_training(run, model, scores) is False:
                stale.setdefault(model, []).append(_file_name(model, dataset))
    notes = {model: _note(model, files) for model, files in stale.items()}
    for model in run.trained_models():
        note = None if model in notes else split_note(run, model) or training_note(run, model)
        if note:
            notes[model] = note
    return notes


def warn_stale(run_dir: str | os.PathLike) -> list[str]:
    """Print (and send to the terminal of ./run_all.sh) a warning per model whose metrics
    describe an earlier training, so a report never passes old figures off as the model's."""
    lines = [f"warning: {note}" for note in stale_notes(run_dir).values()]
    progress.say(lines)
    return lines


def check_model_name(run_dir: str | os.PathLike, model: str, trainable: bool = True) -> None:
    """A DataError listing the models the run has when `model` is none of them, nor (with
    trainable, as for notebook 05, which says to train one) a name notebook 04 can train: a
    misspelt name is said to be one, not a model to train."""
    from helpers.models.registry import list_models  # Keras-free

    run = RunFolder(run_dir)
    have = run.trained_models()
    if model in have or (trainable and model in list_models()):
        return
    has = f"it has {', '.join(have)}" if have else "it has no trained model yet"
    hint = did_you_mean(model, have or list_models())
    raise DataError(
        run.model_path(model),
        f"run {run.name} has no model '{model}' ({has}; notebook 04 trains "
        f"{', '.join(list_models())}){hint}",
    )
