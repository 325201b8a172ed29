"""Speed and memory of every stage, measured side by side with the coursework approach.

    python -m benchmarks [--quick] [--only NAME,...] [--out DIR] [--run-dir RUN ...] [--run-e2e]
                         [--scale-sizes N,N,...] [--levers-data fer2013.zip]
                         [--recipe-data fer2013.zip --recipe-profile fer2013-gpu]
                         [--framing-data fer2013.zip --framing-model MODEL.keras]

Each benchmark measures the project's way and the coursework's way in the same process run,
interleaved, so the noise of a shared machine falls on both; results are ratios as well as
seconds. Output: `<out>/benchmarks.json` and `<out>/benchmarks.md` (default out: a new
`reports/benchmarks/<timestamp>/`). `--quick` runs everything on tiny inputs to prove the
scripts work; the full mode is for people. See benchmarks/RESULTS.md.
"""

from __future__ import annotations

# Names accepted by --only, in the order they run; each is a module of this package.
BENCHMARKS: tuple[str, ...] = (
    "ingestion",
    "input_pipeline",
    "training",
    "bottleneck",
    "workers",
    "memory",
    "end_to_end",
    "inference",
    "scale",
    "step",
    "levers",
    "recipe",
    "framing",
)
