"""Levers: what each change to the FER-2013 CPU recipe buys in the same minutes.

    python -m benchmarks --only levers --levers-data fer2013.zip [--levers-minutes 10]
                         [--levers plateau,cosine,...]

A full hour per candidate recipe is too dear on a CPU, so each lever is compared on a short
budget first, same seed, same data, and only the winners get the hour. One run folder is
prepared as notebooks 01 and 03 prepare it (records; splits with near-duplicates kept together;
the profile's balance and augmentation settings); then the profile's custom CNN trains once per
lever with the same time budget, and is scored on the validation split (what a choice is made
on) and on the test split, as it is, with each test-time augmentation, and as an ensemble of
its last epochs' weights (softmax averaged). Without --levers-data the full mode skips (the
faces are not in the repository); --quick runs two levers (the reference and one that changes
the augmentation) on the tiny demo zip for a step or two, to prove the script.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from benchmarks.common import Context, Skip, comparison, table

TITLE = "Levers: the FER-2013 CPU recipe, one change at a time, same minutes"
PROFILE = "fer2013-cpu"
MODEL = "custom_cnn"
NEAR_DISTANCE = 4  # perceptual-hash bits, as notebooks 02 and 03
TTA_MODES = ("none", "flip", "tencrop")
ENSEMBLE_LAST = 3  # epochs whose weights the checkpoint ensemble averages
# --quick proves the script on the reference and on a lever that sets the augmentation;
# every lever's settings are checked by the tests without training.
QUICK_LEVERS = ("plateau", "erasing_cosine")


@dataclass(frozen=True)
class Lever:
    """One recipe change: TrainConfig overrides and AugmentConfig overrides on the profile."""

    what: str
    train: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)


# The custom CNN's options with the 44 px windows (crop44_cosine): the base the later levers
# change one thing of. Sequences are lists, as the results' JSON gives them.
_CROP44: dict[str, Any] = {"block_dropout": 0.05, "train_crop": 44}

# The first is the reference every other lever is compared with.
LEVERS: dict[str, Lever] = {
    "plateau": Lever(
        "Adam 1e-3, learning rate halved after 3 epochs without progress (the recipe before)",
        {"lr_schedule": "plateau"},
    ),
    "cosine": Lever(
        "Adam 1e-3 annealed along a cosine over the time budget (the profile now)",
        {"lr_schedule": "cosine"},
    ),
    "sgd_cosine": Lever(
        "SGD with Nesterov momentum at 0.01, cosine over the budget",
        {"optimizer": "sgd", "learning_rate": 0.01, "lr_schedule": "cosine"},
    ),
    "erasing_cosine": Lever(
        "cosine, plus random erasing (one hole of 10-30% of the side, p 0.5; in the profile "
        "since it had the hour)",
        {"lr_schedule": "cosine"},
        {"dropout_p": 0.5, "dropout_max_holes": 1, "dropout_size": (0.1, 0.3)},
    ),
    "ema_cosine": Lever(
        "cosine, validated and kept as an exponential moving average of the weights "
        "(momentum 0.998: about the last 500 steps, 1.2 epochs)",
        {"lr_schedule": "cosine", "ema_momentum": 0.998},
    ),
    "px44_cosine": Lever(
        "cosine, faces resized to 44 px: a cheaper step, more epochs in the minutes "
        "(the step benchmark); without the profile's 44 px window, the whole face at that size",
        {"lr_schedule": "cosine", "image_size": 44, "backbone_options": {"block_dropout": 0.05}},
    ),
    "lr3x_cosine": Lever(
        "cosine from three times the rate (Adam 3e-3): faster early learning in few epochs",
        {"lr_schedule": "cosine", "learning_rate": 3e-3},
    ),
    "b32_cosine": Lever(
        "cosine at batch 32: twice the updates per epoch for about the same images/s",
        {"lr_schedule": "cosine", "batch_size": 32},
    ),
    "b128_cosine": Lever(
        "the profile at batch 128: on a CPU whose step runs faster on larger batches (the step "
        "benchmark), more epochs in the minutes for half the updates",
        {"batch_size": 128},
    ),
    "lessreg_cosine": Lever(
        "cosine with less regularisation for an hour that underfits: no label smoothing, "
        "head dropout 0.1 (not 0.3)",
        {"lr_schedule": "cosine", "label_smoothing": 0.0, "dropout": 0.1},
    ),
    "deep_cosine": Lever(
        "the profile with its arithmetic moved to the small maps: one conv at 48 px (the costly "
        "one per multiply on a CPU), three in each of the last two blocks (1, 2, 3, 3): 60% more "
        "weights for about the same step",
        {"backbone_options": {"convs": [1, 2, 3, 3]}},  # a list, as the results' JSON gives it
    ),
    "blockdrop_cosine": Lever(
        "the profile with half the blocks' dropout (0.05 a block: 0.05 to 0.2, not 0.1 to 0.4), "
        "for an hour that underfits (the profile now)",
        {"backbone_options": {"block_dropout": 0.05}},
    ),
    "noblockdrop_cosine": Lever(
        "the profile without the blocks' dropout: does less regularisation keep paying",
        {"backbone_options": {"block_dropout": 0.0}},
    ),
    "bf16_cosine": Lever(
        "the profile in mixed bfloat16 (mixed_precision 'bfloat16'): this CPU's AMX runs the "
        "convolutions natively, 1.3x the images/s on the step, more epochs in the minutes (in "
        "the profile since it had the hour)",
        {"mixed_precision": "bfloat16"},
    ),
    "residual_cosine": Lever(
        "the profile with a shortcut around each block (a 1x1 conv to the block's width, added "
        "before the last ReLU; the branch starts at zero): easier optimisation for 4% more weights",
        {"backbone_options": {"block_dropout": 0.05, "residual": True}},
    ),
    "crop44_cosine": Lever(
        "the profile trained on a random 44 px window of each 48 px face, pixel for pixel (the "
        "published recipes' random crops), and predicting on the centre window: crops as "
        "augmentation, where resizing to 44 px had paid for its cheaper step in detail",
        {"backbone_options": dict(_CROP44)},
    ),
    "se_cosine": Lever(
        "the profile with a squeeze-and-excitation gate ending each of the last two blocks (a "
        "quarter of their channels in the bottleneck): global context per face for 3% more "
        "weights, on the small maps only (even there a fifth of the step in bfloat16 on a CPU)",
        {"backbone_options": {**_CROP44, "se_ratio": [0, 0, 0.25, 0.25]}},
    ),
    "stem1_cosine": Lever(
        "the profile with one conv instead of two in the first block (1, 2, 2, 2): the full-"
        "resolution conv, the most bytes per multiply, left out for a cheaper step and more "
        "epochs in the hour; 0.8% of the weights go with it",
        {"backbone_options": {**_CROP44, "convs": [1, 2, 2, 2]}},
    ),
    "crop44_noblockdrop_cosine": Lever(
        "the profile without the blocks' dropout, the 44 px windows and random erasing still "
        "regularising: less regularisation for an hour that ends with training accuracy only "
        "3-4 points above validation, and a step 5-8% cheaper in bfloat16 (in memory)",
        {"backbone_options": {**_CROP44, "block_dropout": 0.0}},
    ),
    "crop44_noblockdrop_acc_cosine": Lever(
        "as crop44_noblockdrop_cosine, keeping the most accurate epoch on validation rather "
        "than the lowest loss: without the dropout the loss levels off from the 28th epoch "
        "while accuracy still climbs",
        {
            "backbone_options": {**_CROP44, "block_dropout": 0.0},
            "checkpoint_metric": "accuracy",
        },
    ),
    "crop44_w16_cosine": Lever(
        "the profile with 16 filters in the first block instead of 32: the full-resolution "
        "block's BatchNorm, ReLU, pooling and dropout work on half the values, for 1.3% fewer "
        "weights; in memory a bfloat16 step 1.1-1.5 times the profile's rate (nine rounds)",
        {"backbone_options": {**_CROP44, "widths": [16, 64, 128, 256]}},
    ),
    "crop44_w16_48_cosine": Lever(
        "as crop44_w16_cosine with 48 filters in the second block instead of 64: the 22 px "
        "block's values cut by a quarter too, for 4% fewer weights than the profile; in memory "
        "a bfloat16 step about 1.5 times the profile's rate",
        {"backbone_options": {**_CROP44, "widths": [16, 48, 128, 256]}},
    ),
    "crop44_w16_se_cosine": Lever(
        "as crop44_w16_cosine with a squeeze-and-excitation gate ending each of the last two "
        "blocks: with BatchNorm's fused kernel the gate costs no measurable share of the bfloat16 "
        "step (in memory, three rounds), so the capacity it adds no longer takes epochs",
        {
            "backbone_options": {
                **_CROP44,
                "widths": [16, 64, 128, 256],
                "se_ratio": [0, 0, 0.25, 0.25],
            }
        },
    ),
    "crop44_std_cosine": Lever(
        "the profile with each face standardised (zero mean, unit variance over its own pixels) "
        "before the first convolution, as the FER-2013 challenge's winner did: lighting and "
        "contrast out of what the network learns, at no cost in weights or step",
        {"backbone_options": {**_CROP44, "standardize": True}},
    ),
    "crop44_late160_cosine": Lever(
        "the profile with the last two blocks a quarter wider (160 and 320 filters): capacity "
        "on the 11 and 5 px maps, where it costs least per weight (51% more weights for about "
        "0.8 times the bfloat16 step in memory), for an hour whose training accuracy stays "
        "within 5 points of validation",
        {"backbone_options": {**_CROP44, "widths": [32, 64, 160, 320]}},
    ),
    "crop44_w24_cosine": Lever(
        "the profile at three quarters of its widths (24, 48, 96 and 192 filters): 57% of the "
        "weights for 1.8 times the float32 step on a CPU with AVX2 alone, where the profile "
        "trains this network (float32_backbone_options)",
        {"backbone_options": {**_CROP44, "widths": [24, 48, 96, 192]}},
    ),
    "crop44_half_cosine": Lever(
        "the profile at half its widths (16, 32, 64 and 128 filters): a quarter of the weights "
        "for 3.2 times the float32 step on a CPU with AVX2 alone, so the hour reaches its cap "
        "of 60 epochs",
        {"backbone_options": {**_CROP44, "widths": [16, 32, 64, 128]}},
    ),
    "wd_cosine": Lever(
        "the profile with decoupled weight decay 0.05 of the kernels (Adam's rate times 0.05 a "
        "step, biases and BatchNorm spared): for an hour that overfits late",
        {"weight_decay": 0.05},
    ),
    "ls_cosine": Lever(
        "the profile with label smoothing 0.1 back: its validation loss rises over the hour's "
        "last epochs while accuracy holds, a network growing overconfident, which softer "
        "targets work against",
        {"label_smoothing": 0.1},
    ),
    "affine35_cosine": Lever(
        "the profile with the affine (shift, scale and rotation) on 35% of the training faces "
        "instead of 70%: the random 44 px windows already move each face, and an hour of 56 "
        "epochs may fit more of what the faces look like unmoved",
        {},
        {"affine_p": 0.35},
    ),
    "affine35_acc_cosine": Lever(
        "as affine35_cosine, keeping the most accurate epoch on validation rather than the "
        "lowest loss: with the lighter affine the loss levels off from the 38th epoch while "
        "accuracy climbs another point",
        {"checkpoint_metric": "accuracy"},
        {"affine_p": 0.35},
    ),
    "swa_cosine": Lever(
        "the profile with stochastic weight averaging: the cosine reaches a tenth of the rate "
        "at three quarters of the hour and holds it, the last quarter's epochs averaged "
        "(BatchNorm recomputed) and kept when validation prefers the average to the best epoch",
        {"swa_start": 0.75, "swa_rate": 0.1},
    ),
    "swa03_cosine": Lever(
        "as swa_cosine with three tenths of the rate held from 60% of the hour: at a tenth the "
        "averaged weights stayed in one basin and their mean was one more draw of it; a higher "
        "held rate moves them apart, as the published recipe's constant rate does",
        {"swa_start": 0.6, "swa_rate": 0.3},
    ),
    "lr2_cosine": Lever(
        "the profile with the cosine starting at twice Adam's rate (2e-3): the one setting of "
        "the optimizer no hour had changed, a larger step as a regulariser for an hour whose "
        "network fits its training faces only 5 points above validation",
        {"learning_rate": 0.002},
    ),
    "mixup_cosine": Lever(
        "the profile with mixup (faces blended in pairs, the expression target alike; "
        "Beta(0.2, 0.2), so most blends stay close to one face): for an hour that overfits late",
        {"mixing": {"mode": "mixup", "alpha": 0.2, "p": 1.0}},
    ),
    "cutmix_cosine": Lever(
        "the profile with CutMix on half the faces (a box of the partner pasted, the target "
        "credited by area): occlusion that, unlike random erasing, keeps the pixels a face",
        {"mixing": {"mode": "cutmix", "alpha": 1.0, "p": 0.5}},
    ),
    "sgd05_cosine": Lever(
        "the profile with SGD (Nesterov momentum 0.9) at 0.05 and weight decay 5e-4, the "
        "optimiser of the published recipes at the rate BatchNorm networks train with at batch "
        "64: slower to start than Adam; its case is made once the rate has annealed",
        {"optimizer": "sgd", "learning_rate": 0.05, "weight_decay": 5e-4},
    ),
    "sgd10_cosine": Lever(
        "as sgd05_cosine from twice the rate (0.1)",
        {"optimizer": "sgd", "learning_rate": 0.1, "weight_decay": 5e-4},
    ),
    "flatten_cosine": Lever(
        "cosine, the 3x3 feature map flattened instead of averaged: the head sees where on "
        "the aligned face a feature is",
        {"lr_schedule": "cosine", "pooling": "flatten"},
    ),
}


def parse_levers(text: str) -> tuple[str, ...]:
    """Lever names from the command line, checked before any work."""
    names = tuple(n.strip() for n in text.split(",") if n.strip()) or tuple(LEVERS)
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        raise ValueError(f"unknown lever(s) {unknown}; choose from {', '.join(LEVERS)}")
    return names


def prepare(source: Path, run_root: Path, seed: int, profile: str = PROFILE) -> Any:
    """A run folder as notebooks 01 and 03 leave it for a profile (made once, then reused)."""
    from helpers.core.run_folder import RunFolder

    run = RunFolder(run_root)
    if run.augment_settings.is_file():  # reused as it is: no image hashing needed
        return run
    from helpers.core import records
    from helpers.data import augment as aug
    from helpers.data import datasets, eda, splits
    from helpers.run import profiles

    run_root.mkdir(parents=True, exist_ok=True)
    params = profiles.resolve(profile)
    table = datasets.read_source(source, progress=False).records
    records.validate_records(table)
    hashes = eda.image_hashes(table, progress=False)
    table = eda.drop_unreadable(table, hashes)
    pairs = eda.find_duplicates(hashes, max_distance=NEAR_DISTANCE)
    split_table = splits.assign_splits(
        table,
        val_share=params["val_share"],
        test_share=params["test_share"],
        seed=seed,
        groups=splits.duplicate_groups(table, pairs),
    )
    records.save_records(split_table, run.splits)
    train = split_table[split_table["split"] == "train"]
    plan = aug.plan_balance(train, strategy=params["balance"], target_per_class=None, seed=seed)
    manifest = aug.planned_copies(plan, split_table)
    records.save_records(aug.balanced_training_table(split_table, plan, manifest), run.train_table)
    aug.AugmentSettings(
        mode="online",
        config=aug.AugmentConfig.from_dict(params["augment"]),
        balance=params["balance"],
        class_weights=plan.class_weights,
        seed=seed,
    ).write(run.augment_settings)
    return run


def budget(ctx: Context, minutes: float | None) -> dict[str, Any]:
    """Training overrides: the minutes given (None: the profile's), or --quick's two steps."""
    if ctx.quick:
        return {"epochs": 1, "max_steps_per_epoch": 2, "time_budget_minutes": None, "batch_size": 8}
    return {"time_budget_minutes": minutes}


def _scores(model: Any, test_table: Any) -> dict[str, list[float]]:
    """Accuracy and macro-F1 per test-time augmentation."""
    from sklearn.metrics import accuracy_score, f1_score

    from helpers.evaluation.predictions import predict_table

    out = {}
    for tta in TTA_MODES:
        pred = predict_table(model, test_table, progress=False, tta=tta)
        truth, guess = pred["expression"], pred["expression_pred"]
        out[tta] = [
            float(accuracy_score(truth, guess)),
            float(f1_score(truth, guess, average="macro")),
        ]
    return out


def _keep_last_weights(n: int) -> Any:
    """A callback holding the weights of the last n epochs, as the epoch-end callbacks see them
    (the averaged ones when the lever averages)."""
    from collections import deque

    import keras

    class KeepLast(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.weights: deque = deque(maxlen=n)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.weights.append(self.model.get_weights())

    return KeepLast()


def _ensemble_accuracy(model: Any, snapshots: Any, split_table: Any) -> float:
    """Accuracy of the softmax averaged over weight snapshots of one run (a checkpoint
    ensemble: one training, several models). The model's own weights are put back after."""
    import numpy as np

    from helpers.core.labels import expression_index
    from helpers.evaluation.predictions import predict_table

    own = model.get_weights()
    probs, columns, truth = [], [], None
    for weights in snapshots:
        model.set_weights(weights)
        pred = predict_table(model, split_table, progress=False)
        columns = [c for c in pred.columns if c.startswith("p_")]
        probs.append(pred[columns].to_numpy())
        truth = pred["expression"].to_numpy()
    model.set_weights(own)
    classes = np.array([expression_index(c[2:]) for c in columns])
    guess = classes[np.mean(probs, axis=0).argmax(axis=1)]
    return float(np.mean(guess == truth))


def lever_settings(
    name: str, settings: Any, heads: tuple[str, ...], seed: int, overrides: dict[str, Any]
) -> tuple[Any, Any]:
    """The profile's training config and augmentation settings with one lever applied, both
    validated on creation, so a lever with a bad value fails before any training."""
    from helpers.data.augment import AugmentConfig
    from helpers.run import profiles

    lever = LEVERS[name]
    if lever.augment and settings is not None:
        config = AugmentConfig.from_dict({**settings.config.to_dict(), **lever.augment})
        settings = replace(settings, config=config)
    cfg = profiles.train_config(
        PROFILE,
        MODEL,
        seed=seed,
        verbose=0,
        heads=heads,
        **{**lever.train, **overrides},  # --quick's wins over a lever's batch size
    )
    return cfg, settings


def train_lever(ctx: Context, run: Any, name: str, minutes: float) -> dict[str, Any]:
    """The profile's custom CNN with one lever, its time budget, scored on val and test."""
    from helpers.core.records import load_records
    from helpers.train import pipeline
    from helpers.train.fit import load_training_inputs, train

    lever = LEVERS[name]
    inputs = load_training_inputs(run.root)
    cfg, settings = lever_settings(
        name,
        inputs.augment,
        pipeline.heads_with_targets(inputs.train),  # as notebook 04
        ctx.seed,
        budget(ctx, minutes),
    )
    kept = _keep_last_weights(ENSEMBLE_LAST)
    start = time.perf_counter()
    result = train(
        cfg,
        inputs.train,
        inputs.val,
        ctx.work / "levers" / "models" / name,
        augment_settings=settings,
        resume=False,
        callbacks=[kept],
    )
    seconds = time.perf_counter() - start
    history = result.history
    # A model with one head names its metrics without the head (val_accuracy).
    accuracy = next(
        (c for c in ("val_expression_accuracy", "val_accuracy") if c in history.columns), None
    )
    splits_table = load_records(run.splits)
    scored = {
        split: _scores(result.model, splits_table[splits_table["split"] == split])
        for split in ("val", "test")
    }
    ensemble = {
        split: _ensemble_accuracy(
            result.model, kept.weights, splits_table[splits_table["split"] == split]
        )
        for split in ("val", "test")
    }
    return {
        "lever": name,
        "what": lever.what,
        "train": lever.train,
        "augment": {k: list(v) if isinstance(v, tuple) else v for k, v in lever.augment.items()},
        "epochs": len(history),
        "minutes": seconds / 60.0,
        "train_images_per_s": float(history["train_images_per_s"].median()),
        "val_accuracy_by_epoch": [float(v) for v in history[accuracy]] if accuracy else [],
        "val": scored["val"],
        "test": scored["test"],
        "ensemble": {**ensemble, "epochs": len(kept.weights)},
    }


def run(ctx: Context) -> dict[str, Any]:
    """Prepare the folder once, train each lever, then the table and the comparisons."""
    source = ctx.levers_data
    if source is None:
        if not ctx.quick:
            raise Skip(
                "needs FER-2013: python -m benchmarks --only levers --levers-data fer2013.zip"
            )
        source = ctx.demo_zip()
    ctx.log(f"levers: preparing a {PROFILE} run folder from {source.name}")
    run_folder = prepare(Path(source), ctx.work / "levers" / "run", ctx.seed)
    minutes, names = (
        ctx.levers_minutes,
        ctx.levers or (QUICK_LEVERS if ctx.quick else tuple(LEVERS)),
    )
    per_lever = []
    for name in names:
        ctx.log(f"levers: {name} ({'2 steps' if ctx.quick else f'{minutes:g} min'})")
        per_lever.append(train_lever(ctx, run_folder, name, minutes))
    reference = per_lever[0]
    rows = [
        [
            r["lever"],
            r["epochs"],
            r["minutes"],
            r["train_images_per_s"],
            r["val"]["none"][0],
            r["val"]["none"][1],
            r["val"]["flip"][0],
            r["val"]["tencrop"][0],
            r["ensemble"]["val"],
            r["test"]["none"][0],
            r["test"]["flip"][0],
            r["test"]["tencrop"][0],
            r["ensemble"]["test"],
        ]
        for r in per_lever
    ]
    comparisons = [
        comparison(
            f"{r['lever']} vs {reference['lever']}: validation accuracy, same minutes",
            r["val"]["none"][0],
            reference["val"]["none"][0],
            "accuracy",
            higher_is_better=True,
            baseline_name=reference["lever"],
        )
        for r in per_lever[1:]
        if r["val"]["none"][0] > 0 and reference["val"]["none"][0] > 0
    ]
    return {
        "title": TITLE,
        "params": {
            "profile": PROFILE,
            "model": MODEL,
            "data": Path(source).name,
            "minutes_each": "2 steps" if ctx.quick else minutes,
            "seed": ctx.seed,
            "levers": list(names),
        },
        "results": {"levers": per_lever},
        "comparisons": comparisons,
        "tables": [
            table(
                "Per lever: epochs and minutes reached in the budget; accuracy on the validation "
                "split (choose on this) and the test split, as it is, with test-time "
                f"augmentation, and as the ensemble of the last {ENSEMBLE_LAST} epochs' weights",
                [
                    "lever",
                    "epochs",
                    "minutes",
                    "train images/s",
                    "val acc",
                    "val macro-F1",
                    "val acc, flip",
                    "val acc, ten-crop",
                    f"val acc, last-{ENSEMBLE_LAST} ensemble",
                    "test acc",
                    "test acc, flip",
                    "test acc, ten-crop",
                    f"test acc, last-{ENSEMBLE_LAST} ensemble",
                ],
                rows,
            ),
            table(
                "What each lever changes",
                ["lever", "change"],
                [[r["lever"], r["what"]] for r in per_lever],
            ),
        ],
        "notes": [
            "Short budgets favour fast learners: a regulariser (random erasing) or SGD, which "
            "often wins over an hour, can lose in ten minutes. A lever that wins here earns the "
            "hour; one that loses here is not proven useless.",
            "The time budget stops before an epoch would end past it, so levers whose epochs run "
            "slower on a busy machine get fewer: compare the epochs column too.",
        ],
    }
