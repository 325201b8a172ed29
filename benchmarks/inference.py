"""Inference: images/s batched vs one at a time, Keras vs TFLite (helpers.inference.deploy)."""

from __future__ import annotations

import gc
from typing import Any

import numpy as np

from benchmarks.common import Context, comparison, per_second, table

TITLE = "Inference: batched vs single, Keras vs TFLite"


def _images(ctx: Context, size: int, n: int) -> np.ndarray:
    """Model-ready float batches of real demo faces (the evaluation pipeline, no augmentation)."""
    from helpers.train.pipeline import make_dataset

    rows = ctx.records().iloc[:n].reset_index(drop=True)
    dataset = make_dataset(
        rows, image_size=size, channels=3, batch_size=64, training=False, cache=False
    )
    return np.concatenate([x.numpy() for x, _ in dataset])


def measure(ctx: Context, name: str, size: int) -> list[dict[str, Any]]:
    """compare_backends for float TFLite (and int8 in full mode) on one untrained model."""
    import keras

    from helpers.inference.deploy import compare_backends
    from helpers.inference.export import export_tflite
    from helpers.models.factory import build_model

    scale = ctx.scale
    keras.backend.clear_session()
    model = build_model(name, image_size=size, channels=3, weights=None, seed=ctx.seed)
    images = _images(ctx, size, scale.inference_images)
    out = []
    for quantize in (None, "int8") if scale.inference_int8 else (None,):
        path = ctx.work / "inference" / f"{name}.{quantize or 'float'}.tflite"
        export_tflite(
            model, path, quantize=quantize, calibration_images=images if quantize else None
        )
        found = compare_backends(
            model, path, images, batch_size=scale.inference_batch, n_single=scale.inference_single
        )
        out.append(
            {
                "model": name,
                "image_size": size,
                "tflite": quantize or "float",
                "images": len(images),
                **found,
            }
        )
    del model
    keras.backend.clear_session()
    gc.collect()
    return out


def run(ctx: Context) -> dict[str, Any]:
    """Every model of this mode; ratios batched/single and TFLite/Keras."""
    scale = ctx.scale
    results, rows, comparisons = [], [], []
    for name, size in scale.inference_models:
        ctx.log(f"inference: {name} at {size} px")
        for r in measure(ctx, name, size):
            results.append(r)
            lat = r["latency"]
            speed = {
                b: {
                    "batched": lat[b]["images_per_s"],
                    "single": per_second(1000.0, lat[b]["single_ms"]),
                }
                for b in ("keras", "tflite")
            }
            r["images_per_s"] = speed
            label = f"{name} {size}px, TFLite {r['tflite']}"
            for backend in ("keras", "tflite"):
                rows.append(
                    [
                        name,
                        size,
                        backend if backend == "keras" else f"tflite ({r['tflite']})",
                        speed[backend]["batched"],
                        speed[backend]["single"],
                        per_second(speed[backend]["batched"], speed[backend]["single"]),
                    ]
                )
            comparisons.append(
                comparison(
                    f"{label}: images/s batched",
                    speed["tflite"]["batched"],
                    speed["keras"]["batched"],
                    "images/s",
                    higher_is_better=True,
                    baseline_name="keras",
                )
            )
            comparisons.append(
                comparison(
                    f"{label}: images/s one at a time",
                    speed["tflite"]["single"],
                    speed["keras"]["single"],
                    "images/s",
                    higher_is_better=True,
                    baseline_name="keras",
                )
            )
    return {
        "title": TITLE,
        "params": {
            "models": [list(m) for m in scale.inference_models],
            "images": scale.inference_images,
            "batch_size": scale.inference_batch,
            "single_images": scale.inference_single,
            "int8": scale.inference_int8,
            "timing": "helpers.inference.deploy.compare_backends: model calls only, after a "
            "warm-up call; untrained models (speed does not depend on weights)",
        },
        "results": {"runs": results},
        "comparisons": comparisons,
        "tables": [
            table(
                "Inference images/s",
                ["model", "px", "backend", "batched", "one at a time", "batched / single"],
                rows,
            )
        ],
        "notes": [
            "Keras runs predict_on_batch (the predictor's call); one at a time is what a "
            "webcam loop or a single photo costs."
        ],
    }
