"""Recipe: a profile's models trained on real faces and scored on its test split, on the Keras
backend and the device this machine has.

    python -m benchmarks --only recipe --recipe-data fer2013.zip [--recipe-profile fer2013-gpu]
                         [--recipe-minutes N] [--recipe-set NAME=VALUE ...]

The figure of a profile measured without notebooks, and so also where `./run_all.sh` cannot
run: a GPU machine with JAX or PyTorch but no TensorFlow build for its CUDA
(`KERAS_BACKEND=jax`; training then reads a Keras PyDataset, the same batches as tf.data). One
run folder is prepared as notebooks 01 and 03 prepare it (benchmarks.levers.prepare; a folder
already under --work is reused, so it can be prepared on another machine), each of the
profile's models trains with its per-model settings (helpers.train.fit.train, the budget
--recipe-minutes when given, each --recipe-set a training setting over the profile's), and the
test split is scored as notebook 05 scores it: without and with the profile's test-time
augmentation, 95% bootstrap intervals beside each figure.
Without --recipe-data the full mode skips (the faces are not in the repository); --quick
trains for two steps on the tiny demo zip, to prove the script.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Context, Skip, table

TITLE = "Recipe: a profile's models on real faces, on this machine's Keras backend and device"
PROFILE = "fer2013-gpu"


def parse_settings(items: list[str] | tuple[str, ...], profile: str) -> dict[str, Any]:
    """NAME=VALUE training settings from the command line (VALUE as JSON where it parses, else
    a string), checked against every model of the profile before any work, so that a variant of
    a recipe is one command rather than an edited profile."""
    if not items:
        return {}
    from helpers.run import profiles

    settings: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(
                f"--recipe-set wants NAME=VALUE, e.g. weight_decay=0.001; got {item!r}"
            )
        try:
            settings[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            settings[name.strip()] = text
    for model in profiles.resolve(profile)["models"]:
        profiles.train_config(profile, model, **settings)  # unknown names, bad values: raise
    return settings


def _scores(model: Any, test_table: Any, tta: str) -> dict[str, Any]:
    """Accuracy and macro-F1 with their 95% intervals, as notebook 05 computes them."""
    from helpers.evaluation.bootstrap import with_confidence_intervals
    from helpers.evaluation.metrics import classification_metrics
    from helpers.evaluation.predictions import predict_table

    start = time.perf_counter()
    pred = predict_table(model, test_table, progress=False, tta=tta)
    seconds = time.perf_counter() - start
    truth, guess = pred["expression"].to_numpy(), pred["expression_pred"].to_numpy()
    metrics = with_confidence_intervals(
        classification_metrics(truth, guess), "expression", truth, guess
    )
    if metrics is None:
        raise ValueError("the test split has no expression labels to score")
    return {
        "accuracy": metrics["accuracy"],
        "accuracy_ci": metrics["accuracy_ci"],
        "f1_macro": metrics["f1_macro"],
        "f1_macro_ci": metrics["f1_macro_ci"],
        "n": metrics["n"],
        "seconds": seconds,
    }


def _given(overrides: dict[str, Any]) -> dict[str, Any]:
    """The overrides that set something: an unset budget leaves a --recipe-set one alone."""
    return {k: v for k, v in overrides.items() if v is not None}


def train_model(ctx: Context, run: Any, profile: str, model_name: str) -> dict[str, Any]:
    """One of the profile's models, trained with its per-model settings and scored on test."""
    from benchmarks.levers import budget
    from helpers.core.records import load_records
    from helpers.run import profiles
    from helpers.train import backend, pipeline
    from helpers.train.fit import load_training_inputs, train

    inputs = load_training_inputs(run.root)
    cfg = profiles.train_config(
        profile,
        model_name,
        seed=ctx.seed,
        verbose=0,
        heads=pipeline.heads_with_targets(inputs.train),  # as notebook 04
        **{**ctx.recipe_settings, **_given(budget(ctx, ctx.recipe_minutes))},
    )
    ctx.log(
        f"recipe: {model_name} on {backend.name()} ({', '.join(backend.device_names())}), "
        f"budget {cfg.time_budget_minutes} min, at most {cfg.epochs} epochs"
    )
    start = time.perf_counter()
    result = train(
        cfg,
        inputs.train,
        inputs.val,
        ctx.work / "recipe" / "models" / profile,
        augment_settings=inputs.augment,
        resume=False,
    )
    minutes = (time.perf_counter() - start) / 60.0
    splits_table = load_records(run.splits)
    test = splits_table[splits_table["split"] == "test"]
    tta = profiles.resolve(profile)["tta"]
    scored = {mode: _scores(result.model, test, mode) for mode in dict.fromkeys(("none", tta))}
    card = result.card
    return {
        "model": model_name,
        "backend": card["versions"]["backend"],
        "versions": card["versions"],
        "devices": card["devices"],
        "mixed_precision": card["mixed_precision"],
        "input_pipeline": card["data"]["input_pipeline"],
        "params": card["params"],
        "epochs": card["epochs_run"],
        "best_epoch": card["best_epoch"],
        "minutes": minutes,
        "training_minutes": (card["training_time_s"] or 0.0) / 60.0,
        "train_images_per_s": card["images_per_s"],
        "val_accuracy": card["best"]["metrics"].get(
            "val_expression_accuracy", card["best"]["metrics"].get("val_accuracy")
        ),
        "tta": tta,
        "test": scored,
    }


def run(ctx: Context) -> dict[str, Any]:
    """Prepare the folder once, train each of the profile's models, then the table."""
    from benchmarks.levers import prepare
    from helpers.run import profiles

    profile = profiles.get_profile(ctx.recipe_profile).name
    source = ctx.recipe_data
    run_root = ctx.work / "recipe" / "run" / profile
    if source is None and not ctx.quick and not (run_root / "augment.json").is_file():
        raise Skip("needs the faces: python -m benchmarks --only recipe --recipe-data ZIP")
    if source is None and ctx.quick:
        source = ctx.demo_zip()
    ctx.log(f"recipe: a {profile} run folder from {Path(source).name if source else run_root}")
    run_folder = prepare(Path(source) if source else run_root, run_root, ctx.seed, profile)
    models = profiles.resolve(profile)["models"]
    per_model = [train_model(ctx, run_folder, profile, m) for m in models]
    rows = []
    for r in per_model:
        for mode, s in r["test"].items():
            rows.append(
                [
                    r["model"],
                    mode,
                    s["accuracy"],
                    f"{s['accuracy_ci'][0]:.3f}-{s['accuracy_ci'][1]:.3f}",
                    s["f1_macro"],
                    f"{s['f1_macro_ci'][0]:.3f}-{s['f1_macro_ci'][1]:.3f}",
                    r["epochs"],
                    r["training_minutes"],
                    r["train_images_per_s"],
                    r["params"],
                    f"{r['backend']} on {', '.join(r['devices'])}",
                ]
            )
    return {
        "title": TITLE,
        "params": {
            "profile": profile,
            "data": Path(source).name if source else str(run_root),
            "minutes": "2 steps" if ctx.quick else (ctx.recipe_minutes or "the profile's"),
            "settings": ctx.recipe_settings,
            "seed": ctx.seed,
        },
        "results": {"models": per_model},
        "comparisons": [],
        "tables": [
            table(
                f"{profile} on its test split, without and with test-time augmentation "
                "(95% bootstrap intervals); epochs and minutes of training in the budget",
                [
                    "model",
                    "tta",
                    "test acc",
                    "95% CI",
                    "macro-F1",
                    "95% CI",
                    "epochs",
                    "train minutes",
                    "train images/s",
                    "parameters",
                    "backend and devices",
                ],
                rows,
            )
        ],
        "notes": [
            "Checkpoints are chosen on the validation split carved from train; the test split "
            "is scored once, at the end."
        ],
    }
