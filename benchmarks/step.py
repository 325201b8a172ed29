"""Step: where the FER-2013 custom CNN's training step goes, and what a cheaper one would buy.

    python -m benchmarks --only step

On a CPU the `fer2013-cpu` hour is a count of training steps: each extra epoch the budget
holds is more learning. Before changing the recipe to make the step cheaper, this measures it:
the profile's model (custom CNN, grayscale, the expression head, batch 64) on tensors already
in memory, the same network cut after each of its four blocks (so each block's share of the
step is the difference), and the variants a cheaper or a wider step would use (a smaller
input, a larger batch, mixed bfloat16, the twice-as-wide `vggnet`), and the other
architectures of the real-face table in float32 and in mixed bfloat16, since which of them
bfloat16 speeds up depends on their convolutions; last, the profile's network with Keras's own
BatchNorm in place of the fused kernel it trains with. The input pipeline is left out: at 48 px
it costs about 1% of the step (the training benchmark).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.common import Context, table
from benchmarks.training import compiled_model, fit_rate

TITLE = "Step: the FER-2013 custom CNN's training step, per block and per variant"
EPOCH_IMAGES = 25_913  # FER-2013's training faces after the validation split is carved out
BUDGET_MINUTES = 55.0  # the fer2013-cpu training budget
# (what, model, input px, batch, dtype policy): the profile's step first, then the candidates.
VARIANTS: tuple[tuple[str, str, int, int, str], ...] = (
    ("the profile: custom CNN, 48 px, batch 64", "custom_cnn", 48, 64, "float32"),
    ("44 px input", "custom_cnn", 44, 64, "float32"),
    ("40 px input", "custom_cnn", 40, 64, "float32"),
    ("batch 128", "custom_cnn", 48, 128, "float32"),
    ("mixed bfloat16 (native on AMX or AVX512-BF16 CPUs)", "custom_cnn", 48, 64, "mixed_bfloat16"),
    ("vggnet (twice as wide)", "vggnet", 48, 64, "float32"),
)
WIDTHS = (32, 64, 128, 256)  # the custom CNN's blocks
# The other architectures of the real-face table at the profile's 48 px and batch 64, in float32
# and in mixed bfloat16: which of them gets the cheaper step from it (--quick: VGG16 alone, the
# quickest of them to build and trace: 27 s for both dtypes on a 2-core AVX2 CPU, MobileNetV2 87).
BACKBONES = ("mobilenetv2", "vgg16", "resnet50", "efficientnetb0")
QUICK_BACKBONES = ("vgg16",)
POLICIES = ("float32", "mixed_bfloat16")
# The custom CNN whose BatchNorm is timed both ways: the profile the hour trains.
NORM_PROFILE = "fer2013-cpu"


def _data(n: int, size: int, batch: int, seed: int) -> Any:
    """n random grayscale images and expression labels, batched from memory."""
    import tensorflow as tf

    from helpers.train.pipeline import without_autotuning

    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (n, size, size, 1)).astype(np.float32)
    labels = rng.integers(0, 8, n).astype(np.int32)
    data = tf.data.Dataset.from_tensor_slices((images, {"expression": labels}))
    return without_autotuning(data.batch(batch))


def _classifier(backbone: Any, size: int) -> Any:
    """A backbone on grayscale pixels with a pooled 8-way softmax, compiled with Adam: the
    least a step needs around the layers being timed."""
    import keras

    from helpers.models.backbones import rescale_unit

    inputs = keras.Input((size, size, 1))
    features = backbone(keras.layers.Lambda(rescale_unit)(inputs))
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    outputs = keras.layers.Dense(8, activation="softmax", dtype="float32", name="expression")(
        pooled
    )
    model = keras.Model(inputs, {"expression": outputs})
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def _prefix(blocks: int, size: int, seed: int) -> Any:
    """The custom CNN's first `blocks` blocks with a pooled 8-way softmax: its step minus the
    previous prefix's is that block's cost."""
    import keras

    from helpers.models.backbones import custom_cnn

    keras.utils.set_random_seed(seed)
    return _classifier(custom_cnn(input_shape=(size, size, 1), widths=WIDTHS[:blocks]), size)


def _norm_model(
    fused: bool, policy: str, size: int, seed: int, options_key: str = "backbone_options"
) -> Any:
    """The profile's custom CNN under `policy`, with the fused BatchNorm it trains with or
    Keras's composed layer in its place: what the fused kernel buys. options_key
    "float32_backbone_options": the lighter network it trains where bfloat16 falls back."""
    import keras

    from helpers.models.backbones import custom_cnn, with_norm
    from helpers.run.profiles import PROFILES
    from helpers.train.fit import dtype_policy

    options = dict(PROFILES[NORM_PROFILE].per_model["custom_cnn"][options_key])
    if options.get("train_crop", 0) >= size:  # --quick's 16 px
        del options["train_crop"]
    keras.utils.set_random_seed(seed)
    with dtype_policy(policy):
        backbone = custom_cnn(input_shape=(size, size, 1), **options)
        if not fused:
            backbone = with_norm(backbone, keras.layers.BatchNormalization)
        return _classifier(backbone, size)


def _model_rate(
    name: str, policy: str, size: int, batch: int, warmup: int, steps: int, seed: int
) -> float:
    """Images/s of a registry model's training step (expression head, grayscale) under a dtype
    policy."""
    from helpers.train.fit import dtype_policy

    with dtype_policy(policy):
        model = compiled_model(name, size, seed, channels=1, heads=("expression",))
    return _rate(model, size, batch, warmup, steps, seed)


def _rate(model: Any, size: int, batch: int, warmup: int, steps: int, seed: int) -> float:
    """Images/s of the model's training step on in-memory grayscale batches."""
    return fit_rate(model, _data((warmup + steps) * batch, size, batch, seed), warmup, steps, batch)


def run(ctx: Context) -> dict[str, Any]:
    """Each variant's rate, then the other architectures', then the prefixes' (blocks 1..4),
    then the shares of the step."""
    warmup, steps = (1, 2) if ctx.quick else (3, 20)
    size_of = (lambda px: 16) if ctx.quick else (lambda px: px)  # 4 poolings need 16 px
    batch_of = (lambda b: 4) if ctx.quick else (lambda b: b)
    rates: dict[str, float] = {}
    variants = VARIANTS[:2] if ctx.quick else VARIANTS  # --quick: the profile and one variant
    for what, name, px, batch, policy in variants:
        ctx.log(f"step: {what}")
        rates[what] = _model_rate(
            name, policy, size_of(px), batch_of(batch), warmup, steps, ctx.seed
        )
    # The ImageNet architectures take 32 px at least; fewer timed steps, as they are slow.
    backbone_size, (bb_warmup, bb_steps) = (32, (1, 2)) if ctx.quick else (48, (2, 8))
    backbone_rates: dict[str, dict[str, float]] = {}
    for name in QUICK_BACKBONES if ctx.quick else BACKBONES:
        for policy in POLICIES:
            ctx.log(f"step: {name}, {policy}")
            backbone_rates.setdefault(name, {})[policy] = _model_rate(
                name, policy, backbone_size, batch_of(64), bb_warmup, bb_steps, ctx.seed
            )
    base_what, _, base_px, base_batch, _ = VARIANTS[0]
    norm_rates: dict[str, dict[str, float]] = {}
    for policy in POLICIES:
        for kind in ("keras", "fused"):
            ctx.log(f"step: {NORM_PROFILE}'s custom CNN, {policy}, {kind} BatchNorm")
            model = _norm_model(kind == "fused", policy, size_of(base_px), ctx.seed)
            norm_rates.setdefault(policy, {})[kind] = _rate(
                model, size_of(base_px), batch_of(base_batch), warmup, steps, ctx.seed
            )
    ctx.log(f"step: {NORM_PROFILE}'s float32 network (float32_backbone_options)")
    model = _norm_model(True, "float32", size_of(base_px), ctx.seed, "float32_backbone_options")
    float32_rate = _rate(model, size_of(base_px), batch_of(base_batch), warmup, steps, ctx.seed)
    prefix = []
    for blocks in range(1, len(WIDTHS) + 1):
        ctx.log(f"step: the first {blocks} block(s)")
        model = _prefix(blocks, size_of(base_px), ctx.seed)
        prefix.append(_rate(model, size_of(base_px), batch_of(base_batch), warmup, steps, ctx.seed))
    per_image_ms = 1000.0 / rates[base_what]
    epochs_per_rate = BUDGET_MINUTES * 60.0 / EPOCH_IMAGES
    cumulative = [1000.0 / r for r in prefix]
    parts = [
        (
            f"block {k + 1} ({WIDTHS[k]} filters, {base_px >> k} px)",
            cumulative[k] - (cumulative[k - 1] if k else 0.0),
        )
        for k in range(len(WIDTHS))
    ]
    parts.append(("flatten, dense layer and head", per_image_ms - cumulative[-1]))
    variant_rows = [
        [
            what,
            name,
            px,
            batch,
            rates[what],
            rates[what] / rates[base_what],
            BUDGET_MINUTES * 60.0 * rates[what] / EPOCH_IMAGES,
        ]
        for what, name, px, batch, _ in variants
    ]
    return {
        "title": TITLE,
        "params": {
            "warmup_steps": warmup,
            "timed_steps": steps,
            "epoch_images": EPOCH_IMAGES,
            "budget_minutes": BUDGET_MINUTES,
        },
        "results": {
            "images_per_s": rates,
            "prefix_images_per_s": prefix,
            "step_ms_per_image": dict(parts),
            "backbone_images_per_s": backbone_rates,
            "batchnorm_images_per_s": norm_rates,
            "float32_network_images_per_s": float32_rate,
        },
        "comparisons": [],
        "tables": [
            table(
                "Training step per variant, tensors in memory (epochs: how many of FER-2013's "
                f"{EPOCH_IMAGES:,} training faces a {BUDGET_MINUTES:g}-minute budget holds at "
                "that rate, validation and input pipeline left out)",
                ["variant", "model", "px", "batch", "images/s", "vs the profile", "epochs"],
                variant_rows,
            ),
            table(
                "Where the profile's step goes (ms per image; a block is the difference "
                "between the network cut after it and cut before it)",
                ["part", "ms per image", "share"],
                [[part, ms, ms / per_image_ms] for part, ms in parts],
            ),
            table(
                "The other architectures' step, grayscale 48 px, batch 64: float32 against mixed "
                "bfloat16 (a speed-up above 1 is a cheaper step on this CPU)",
                ["model", *(f"{p} images/s" for p in POLICIES), "bfloat16 speed-up"],
                [
                    [name, *(r[p] for p in POLICIES), r[POLICIES[1]] / r[POLICIES[0]]]
                    for name, r in backbone_rates.items()
                ],
            ),
            table(
                f"BatchNorm in the {NORM_PROFILE} custom CNN's step, {base_px} px, batch "
                f"{base_batch}: Keras's layer (separate reductions and element-wise ops, cast to "
                "float32 under mixed precision) against TensorFlow's fused kernel, which the "
                "custom CNN trains with",
                ["policy", "Keras images/s", "fused images/s", "speed-up", "epochs (fused)"],
                [
                    [
                        policy,
                        r["keras"],
                        r["fused"],
                        r["fused"] / r["keras"],
                        BUDGET_MINUTES * 60.0 * r["fused"] / EPOCH_IMAGES,
                    ]
                    for policy, r in norm_rates.items()
                ],
            ),
            table(
                f"Where bfloat16 falls back to float32 (a CPU without bfloat16 instructions): "
                f"the {NORM_PROFILE} custom CNN and the lighter network its profile trains "
                "there (float32_backbone_options), both in float32",
                ["network", "images/s", "vs its own network", "epochs"],
                [
                    [what, rate, rate / norm_rates["float32"]["fused"], rate * epochs_per_rate]
                    for what, rate in (
                        ("its own network", norm_rates["float32"]["fused"]),
                        ("float32_backbone_options", float32_rate),
                    )
                ],
            ),
        ],
        "notes": [
            "Each rate is fit()'s training step (forward, backward, Adam) after the warm-up "
            "steps, on random tensors in memory; real epochs also validate and run the input "
            "pipeline, so they hold a little fewer images per second.",
            "A block's share is a difference of two noisy rates: read it to a few points.",
        ],
    }
