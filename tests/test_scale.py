"""The scale benchmark (benchmarks/scale.py): its arithmetic on made-up figures (growth exponents,
the super-linear flag, the projection to full AffectNet, the cost table) and its notebook 03
stage on a small folder of faces."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is a top-level package of the repo, not installed
    sys.path.insert(0, str(REPO))

from benchmarks.scale import (  # noqa: E402
    AFFECTNET_IMAGES,
    COST_COLUMNS,
    STAGE_NAMES,
    cost_rows,
    growth_exponents,
    growth_label,
    parse_sizes,
    project_stages,
    projected,
)

SIZES = (4000, 32000, 128000)


def test_exponents_of_linear_and_quadratic_timings() -> None:
    linear = [0.002 * n for n in SIZES]
    quadratic = [1e-8 * n * n for n in SIZES]
    assert growth_exponents(SIZES, linear) == pytest.approx([1.0, 1.0])
    assert growth_exponents(SIZES, quadratic) == pytest.approx([2.0, 2.0])
    assert [growth_label(e) for e in growth_exponents(SIZES, linear)] == ["linear"] * 2
    assert [growth_label(e) for e in growth_exponents(SIZES, quadratic)] == ["super-linear"] * 2


def test_a_fixed_cost_reads_sub_linear_and_an_undefined_step_has_no_exponent() -> None:
    exponents = growth_exponents(SIZES, [10 + 1e-5 * n for n in SIZES])
    assert all(e is not None and e < 0.8 for e in exponents)
    assert growth_label(exponents[0]) == "sub-linear"
    assert growth_exponents(SIZES, [0.0, 5.0, float("nan")]) == [None, None]
    assert growth_label(None) == ""


def test_the_flag_starts_above_1_2_and_ignores_noise_below_the_floor() -> None:
    assert growth_label(1.19) == "linear" and growth_label(1.21) == "super-linear"
    assert growth_label(2.0, value=0.3, floor=1.0) == "below noise floor"


def test_projection_of_linear_cost_with_a_fixed_part_is_exact() -> None:
    value, how = projected(SIZES, [5 + 0.001 * n for n in SIZES], AFFECTNET_IMAGES)
    assert how == "linear" and value == pytest.approx(5 + 0.001 * AFFECTNET_IMAGES)


def test_projection_keeps_a_super_linear_exponent() -> None:
    value, how = projected(SIZES, [1e-8 * n * n for n in SIZES], AFFECTNET_IMAGES)
    assert how == "n^2.00" and value == pytest.approx(1e-8 * AFFECTNET_IMAGES**2)
    # Below the noise floor the same growth is taken as linear, not carried on as n^2.
    _, noisy = projected(SIZES, [1e-8 * n * n for n in SIZES], AFFECTNET_IMAGES, floor=1e6)
    assert noisy == "linear"


def test_projection_of_a_cost_that_did_not_grow_stays_flat() -> None:
    assert projected(SIZES, [3.0, 3.0, 2.9], AFFECTNET_IMAGES) == (2.9, "flat")
    assert projected(SIZES, [0.0, 0.0, 0.0], AFFECTNET_IMAGES) == (0.0, "none")
    assert projected((100,), [2.0], 1000) == (pytest.approx(20.0), "proportional")


def _stage(seconds: list[float], growth: list[float], disk: list[float]) -> dict[str, Any]:
    """A stage's series: memory grows from a 200 MB process."""
    return {
        "seconds": seconds,
        "cpu_seconds": [2 * t for t in seconds],  # two cores busy
        "rss_before": [200e6] * len(seconds),
        "peak_rss": [200e6 + g for g in growth],
        "disk": disk,
    }


def test_project_stages_adds_hours_takes_the_largest_peak_and_repeats_training() -> None:
    stages = {
        "ingest": _stage(
            [0.001 * n for n in SIZES], [100.0 * n for n in SIZES], [500.0 * n for n in SIZES]
        ),
        "train": _stage([0.01 * n for n in SIZES], [1000.0 * n for n in SIZES], [0.0] * 3),
    }
    one = project_stages(SIZES, stages)
    assert one["stages"]["ingest"]["seconds"] == pytest.approx(290.0)
    assert one["stages"]["train"]["peak_rss_bytes"] == pytest.approx(200e6 + 290e6)
    assert one["hours"] == pytest.approx((290 + 2900) / 3600)
    assert one["cpu_hours"] == pytest.approx(2 * one["hours"])
    assert one["peak_rss_bytes"] == pytest.approx(490e6)
    assert one["disk_bytes"] == pytest.approx(500 * AFFECTNET_IMAGES)
    twelve = project_stages(SIZES, stages, repeats={"train": 12})
    assert twelve["hours"] == pytest.approx((290 + 12 * 2900) / 3600)


def _per_size(quadratic: str | None, wall_only: str | None = None) -> list[dict[str, Any]]:
    """Made-up measurements of every stage: linear, except one stage quadratic in time (and
    one whose wall clock alone grows quadratically, as on a machine getting busier)."""
    out = []
    for n in SIZES:
        stages = {}
        for name in STAGE_NAMES:
            cpu = 1e-6 * n * n if name == quadratic else 0.002 * n
            stages[name] = {
                "seconds": 1e-6 * n * n if name == wall_only else cpu,
                "cpu_seconds": cpu,
                "rss_before_bytes": 300e6,
                "peak_rss_bytes": 300e6 + 2000 * n,
                "disk_bytes": 1000 * n,
            }
        out.append({"records": n, "stages": stages})
    return out


def test_cost_table_has_every_stage_and_flags_the_quadratic_one() -> None:
    rows = cost_rows(SIZES, _per_size(quadratic="eda"))
    assert {"exponent: time", "exponent: CPU", "exponent: memory", "exponent: disk"} <= set(
        COST_COLUMNS
    )
    assert [r[0] for r in rows] == [s for s in STAGE_NAMES for _ in SIZES]
    flag = COST_COLUMNS.index("flag")
    flagged = {r[0] for r in rows if r[flag]}
    assert flagged == {"eda"}
    eda = [r for r in rows if r[0] == "eda"]
    assert eda[0][COST_COLUMNS.index("exponent: time")] is None  # nothing before the first size
    assert eda[2][COST_COLUMNS.index("exponent: time")] == pytest.approx(2.0)
    per_record = [r[COST_COLUMNS.index("s/record")] for r in rows if r[0] == "ingest"]
    assert per_record == pytest.approx([0.002] * 3)
    assert not {r[0] for r in cost_rows(SIZES, _per_size(quadratic=None)) if r[flag]}
    busy = cost_rows(SIZES, _per_size(quadratic=None, wall_only="train"))
    assert {r[0]: r[flag] for r in busy if r[flag]} == {
        "train": "wall clock only (load or waiting?)"
    }


def test_scale_sizes_option() -> None:
    assert parse_sizes("32000, 4000") == (4000, 32000)
    for bad in ("4000", "x,y", "8,4000", ""):
        with pytest.raises(ValueError, match="scale-sizes"):
            parse_sizes(bad)


def test_the_split_stage_writes_the_split_as_notebook_03_does(tmp_path: Path) -> None:
    from benchmarks import scale
    from builders import noisy_jpeg, write_tree
    from helpers.core import records
    from helpers.core.run_folder import RunFolder
    from helpers.data import datasets

    names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    files = {
        f"faces/{name}/{k}.jpg": noisy_jpeg(seed=10 * c + k)
        for c, name in enumerate(names)
        for k in range(14)
    }
    source = write_tree(tmp_path / "data", files) / "faces"
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    records.save_records(datasets.read_source(source).records, run.records)
    spec = {"seed": 0, "balance_target": 8}
    for _ in range(2):  # a second run on the same folder reads the data's own split again
        scale._split(spec, run)
        table = records.load_records(run.records)
        assert records.SOURCE_SPLIT in table.columns  # records.parquet carries 03's split
        assert table[records.SOURCE_SPLIT].isna().all()  # the data came with none
        made = records.load_records(run.splits).set_index("id")["split"]
        assert table.set_index("id")["split"].equals(made.reindex(table["id"]).astype("str"))
