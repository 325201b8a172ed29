"""The benchmarks package: `python -m benchmarks --quick` runs every benchmark and writes numbers.

Timing values are never asserted (they are noise at quick sizes); only that each benchmark
produced finite numbers, or said why it skipped, and that the written reports are complete.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is a top-level package of the repo, not installed
    sys.path.insert(0, str(REPO))

from benchmarks import BENCHMARKS  # noqa: E402
from benchmarks.common import Context, Skip, comparison, memory_now  # noqa: E402
from benchmarks.end_to_end import read_stages  # noqa: E402
from benchmarks.report import cell, render, summary_rows  # noqa: E402
from helpers.core.errors import DataError  # noqa: E402

STAGES = {
    "01_extract": {"status": "ok", "seconds": 10.5},
    "02_eda": {"status": "ok", "seconds": 20.0},
    "04_train.custom_cnn": {"status": "ok", "seconds": 69.5},
}


def _fake_run(folder: Path, stages: dict[str, Any] = STAGES) -> Path:
    """A run folder holding just the manifest ./run_all.sh writes."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "profile": {"name": "smoke"},
                "models": ["custom_cnn"],
                "data": {"path": "demo.zip"},
                "created": "2026-01-01T00:00:00+00:00",
                "stages": stages,
            }
        )
    )
    return folder


def _numbers(value: Any) -> list[float]:
    """Every number anywhere inside a JSON value."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `python -m benchmarks --quick` run for the whole module (about two minutes)."""
    tmp = tmp_path_factory.mktemp("bench")
    run_dir = _fake_run(tmp / "run")
    out = tmp / "out"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--out",
            str(out),
            "--work",
            str(tmp / "work"),
            "--run-dir",
            str(run_dir),
            "--recipe-set",
            "weight_decay=0.001",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {"done": done, "out": out, "run_dir": run_dir}


def test_quick_run_succeeds_and_prints_the_table(quick_run: dict[str, Any]) -> None:
    done = quick_run["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Summary" in done.stdout
    assert "| benchmark | measure |" in done.stdout


def test_json_has_every_benchmark_with_numbers_or_a_reason(quick_run: dict[str, Any]) -> None:
    report = json.loads((quick_run["out"] / "benchmarks.json").read_text())
    assert report["mode"] == "quick"
    assert list(report["benchmarks"]) == list(BENCHMARKS)
    for name, bench in report["benchmarks"].items():
        assert bench["status"] in ("ok", "skipped"), (name, bench.get("reason"))
        assert isinstance(bench["seconds"], float)
        if bench["status"] == "skipped":
            assert bench["reason"].strip(), name
            continue
        numbers = _numbers(bench["results"])
        assert numbers and all(math.isfinite(n) for n in numbers), name
        for c in bench["comparisons"]:
            assert c["project"] > 0 and c["baseline"] > 0 and c["ratio"] > 0, (name, c)
            assert c["met"] in (True, False, None)
        assert bench["tables"] and all(t["rows"] for t in bench["tables"]), name


def test_every_target_is_judged(quick_run: dict[str, Any]) -> None:
    """The four benchmarks with a target in the brief say whether it was met."""
    report = json.loads((quick_run["out"] / "benchmarks.json").read_text())
    for name in ("ingestion", "input_pipeline", "training", "memory"):
        targets = [c for c in report["benchmarks"][name]["comparisons"] if c["target"]]
        assert targets and all(isinstance(c["met"], bool) for c in targets), name


def test_machine_facts_are_recorded_once(quick_run: dict[str, Any]) -> None:
    machine = json.loads((quick_run["out"] / "benchmarks.json").read_text())["machine"]
    assert machine["cpu_count"] >= 1 and machine["ram_bytes"] > 0
    assert machine["cpu_model"] and machine["tensorflow"]
    assert "gpus" in machine and "load_average_end" in machine


def test_memory_peaks_come_from_child_processes(quick_run: dict[str, Any]) -> None:
    memory = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]["memory"]
    runs = memory["results"]["runs"]
    assert {"floor", "cache_none", "python_floor", "coursework"} <= set(runs)
    for run in runs.values():
        assert run["peak_rss_bytes"] > 0
    # TensorFlow and a model weigh far more than a bare numpy/cv2 process.
    assert runs["floor"]["peak_rss_bytes"] > runs["python_floor"]["peak_rss_bytes"]
    assert runs["coursework"]["array_bytes"] == runs["coursework"]["images"] * 48 * 48 * 3 * 4


def test_end_to_end_tabulates_the_given_run(quick_run: dict[str, Any]) -> None:
    report = json.loads((quick_run["out"] / "benchmarks.json").read_text())
    runs = report["benchmarks"]["end_to_end"]["results"]["runs"]
    assert [r["run_dir"] for r in runs] == [str(quick_run["run_dir"])]
    assert runs[0]["stages_total_s"] == pytest.approx(100.0)


def test_markdown_file_has_a_section_per_benchmark(quick_run: dict[str, Any]) -> None:
    text = (quick_run["out"] / "benchmarks.md").read_text()
    assert text.startswith("# Benchmarks (quick mode)")
    for name in BENCHMARKS:
        assert f"\n## {name}: " in text


def test_scale_table_has_every_stage_size_and_exponent(quick_run: dict[str, Any]) -> None:
    from benchmarks.scale import COST_COLUMNS, STAGE_NAMES

    scale = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]["scale"]
    sizes = scale["params"]["sizes"]
    assert sizes == [64, 256]
    costs, parts, projection = scale["tables"]
    assert {row[0] for row in parts["rows"]} == {"eda", "split"}
    assert costs["columns"] == COST_COLUMNS and "exponent: time" in costs["columns"]
    assert [(r[0], r[1]) for r in costs["rows"]] == [(s, n) for s in STAGE_NAMES for n in sizes]
    for row in costs["rows"]:
        cells = dict(zip(COST_COLUMNS, row, strict=True))
        assert cells["seconds"] > 0 and cells["peak RSS (GB)"] > 0, row
    assert [r[0] for r in projection["rows"][: len(STAGE_NAMES)]] == list(STAGE_NAMES)
    assert scale["results"]["projection"]["target"] == 290_000
    assert scale["results"]["projection"]["hours"] > 0
    assert set(scale["results"]["exponents"]) == set(STAGE_NAMES)
    text = (quick_run["out"] / "benchmarks.md").read_text()
    assert "Projected for 290,000 images" in text and "| exponent: time |" in text


def test_scale_stages_wrote_a_run_folder_as_the_notebooks_do(quick_run: dict[str, Any]) -> None:
    run = quick_run["out"].parent / "work" / "scale" / "n256" / "run"
    for name in ("records.parquet", "splits.parquet", "train.parquet", "augment.json"):
        assert (run / name).is_file(), name
    assert (run / "models" / "custom_cnn.keras").is_file()
    assert (run / "metrics" / "custom_cnn.json").is_file()
    assert len(list((run / "report_figures").glob("*.png"))) >= 4
    assert not (run / "cache").exists()  # the decoded cache is removed, as train() does


def test_bottleneck_rates_each_compared_model_against_the_pipeline(
    quick_run: dict[str, Any],
) -> None:
    bench = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]
    results = bench["bottleneck"]["results"]
    assert results["pipeline"]["warm_images_per_s"] > 0
    assert list(results["models"]) == ["custom_cnn"]
    for model in results["models"].values():
        assert model["model_images_per_s"] > 0
        assert model["limit"] in ("input pipeline", "model")


def test_input_pipeline_has_the_keras_baseline_side_by_side(quick_run: dict[str, Any]) -> None:
    from benchmarks.input_pipeline import KERAS

    bench = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]
    pipeline = bench["input_pipeline"]
    for size in ("32", "48"):
        speed = pipeline["results"]["sizes"][size]["images_per_s"]
        assert speed["keras_cold"] > 0 and speed["keras_warm"] > 0
    keras = [c for c in pipeline["comparisons"] if c["baseline_name"] == KERAS]
    assert len(keras) == 4  # first and later epochs at both sizes
    assert sum("epochs after the first" in note for note in pipeline["notes"]) == 2


def test_workers_times_both_loaders_with_and_without_processes(quick_run: dict[str, Any]) -> None:
    bench = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]
    results = bench["workers"]["results"]
    assert sorted(results) == sorted(f"{lo}/{n}" for lo in ("python", "tf.data") for n in (0, 1, 2))
    assert all(rate > 0 for rate in results.values())
    assert bench["workers"]["comparisons"][0]["baseline_name"] == "threads in the training process"


def test_process_counts_double_up_to_the_cores() -> None:
    from benchmarks.workers import process_counts

    assert process_counts(1) == (0, 1)
    assert process_counts(2) == (0, 1, 2)
    assert process_counts(16) == (0, 1, 2, 4, 8, 16)
    assert process_counts(6) == (0, 1, 2, 4, 6)


# --------------------------------------------------------------------------- in-process units


def test_read_stages_sums_the_manifest(tmp_path: Path) -> None:
    run = read_stages(_fake_run(tmp_path / "run"))
    assert run["profile"] == "smoke" and run["all_ok"]
    assert run["stages_total_s"] == pytest.approx(100.0)
    assert run["stages"]["04_train.custom_cnn"] == {"status": "ok", "seconds": 69.5}


def test_read_stages_names_a_missing_or_damaged_manifest(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"manifest\.json"):
        read_stages(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest\.json"):
        read_stages(tmp_path)


def test_failed_stage_marks_the_run_incomplete(tmp_path: Path) -> None:
    run = read_stages(
        _fake_run(tmp_path, {**STAGES, "05_evaluate": {"status": "failed", "seconds": 3.0}})
    )
    assert not run["all_ok"]


def test_quick_end_to_end_without_a_run_skips_with_a_reason(tmp_path: Path) -> None:
    from benchmarks import end_to_end

    ctx = Context(quick=True, out=tmp_path, work=tmp_path)
    with pytest.raises(Skip, match="--run-dir"):
        end_to_end.run(ctx)


def test_levers_train_and_score_the_quick_levers(quick_run: dict[str, Any]) -> None:
    """Each lever trained on one prepared folder, scored on val and test with every TTA mode
    and as a checkpoint ensemble, and compared with the first lever."""
    from benchmarks.levers import LEVERS, QUICK_LEVERS, TTA_MODES

    bench = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]
    levers = bench["levers"]["results"]["levers"]
    assert [r["lever"] for r in levers] == list(QUICK_LEVERS)
    assert any(LEVERS[name].augment for name in QUICK_LEVERS)  # the augmentation path runs
    for r in levers:
        assert r["epochs"] == 1 and r["train"] == LEVERS[r["lever"]].train
        for split in ("val", "test"):
            assert set(r[split]) == set(TTA_MODES)
            assert all(0.0 <= v <= 1.0 for pair in r[split].values() for v in pair)
            # One epoch: the ensemble is that epoch's weights, the kept model, so it scores the
            # same; its class mapping agrees with the predictions table's.
            assert r["ensemble"][split] == pytest.approx(r[split]["none"][0])
        assert r["ensemble"]["epochs"] == 1
    run = quick_run["out"].parent / "work" / "levers" / "run"
    assert (run / "splits.parquet").is_file() and (run / "augment.json").is_file()
    assert len(bench["levers"]["tables"][0]["rows"]) == len(QUICK_LEVERS)


def test_every_lever_applies_to_the_profile_and_builds_its_model() -> None:
    """Every lever's settings are accepted by the training and augmentation configs (a typo
    or a bad value fails here, not an hour into a benchmark run) and change what they say."""
    from benchmarks.levers import LEVERS, lever_settings
    from helpers.data.augment import AugmentConfig, AugmentSettings
    from helpers.train import fit

    base = AugmentSettings(mode="online", config=AugmentConfig())
    for name, lever in LEVERS.items():
        cfg, settings = lever_settings(name, base, ("expression",), 0, {"epochs": 1})
        for key, value in lever.train.items():
            assert cfg.to_dict()[key] == value, (name, key)  # lists, as JSON gives them
        for key, value in lever.augment.items():
            assert getattr(settings.config, key) == value, (name, key)
        model, pretrained, *_ = fit._build(cfg)  # as train() builds it
        assert model.count_params() > 0 and not pretrained


def test_recipe_trains_and_scores_the_profiles_models(quick_run: dict[str, Any]) -> None:
    """Each of the GPU profile's models trained and scored on test, without and with the
    profile's test-time augmentation, each figure with its interval."""
    from helpers.run import profiles

    bench = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]
    recipe = bench["recipe"]
    profile = profiles.resolve("fer2013-gpu")
    models = recipe["results"]["models"]
    assert [m["model"] for m in models] == list(profile["models"])
    for m in models:
        assert m["epochs"] == 1 and m["params"] > 0 and m["backend"] == "tensorflow"
        assert m["input_pipeline"] == "tf.data" and m["tta"] == profile["tta"] == "tencrop"
        assert set(m["test"]) == {"none", "tencrop"}
        for scored in m["test"].values():
            for key in ("accuracy", "f1_macro"):
                low, high = scored[f"{key}_ci"]
                assert 0.0 <= low <= scored[key] <= high <= 1.0
    assert len(recipe["tables"][0]["rows"]) == 2 * len(models)
    run = quick_run["out"].parent / "work" / "recipe" / "run" / "fer2013-gpu"
    assert (run / "augment.json").is_file()
    # --recipe-set reached training, over the profile's own value (none for vggnet)
    assert recipe["params"]["settings"] == {"weight_decay": 0.001}
    assert profiles.train_config("fer2013-gpu", "vggnet").weight_decay is None
    for m in models:
        card_path = run.parents[1] / "models" / "fer2013-gpu" / "models" / f"{m['model']}.json"
        card = json.loads(card_path.read_text())
        assert card["parameters"]["weight_decay"] == 0.001


def test_recipe_settings_are_parsed_as_json_and_checked_before_any_work() -> None:
    from benchmarks.recipe import parse_settings
    from helpers.core.errors import ConfigError

    assert parse_settings([], "fer2013-gpu") == {}
    got = parse_settings(
        ["weight_decay=1e-3", "lr_schedule=plateau", 'mixing={"mode": "mixup", "alpha": 0.2}'],
        "fer2013-gpu",
    )
    assert got == {
        "weight_decay": 0.001,
        "lr_schedule": "plateau",  # not JSON: kept as the string
        "mixing": {"mode": "mixup", "alpha": 0.2},
    }
    with pytest.raises(ValueError, match=r"NAME=VALUE.*'weight_decay'"):
        parse_settings(["weight_decay"], "fer2013-gpu")
    with pytest.raises(ConfigError, match="wieght_decay"):
        parse_settings(["wieght_decay=0.001"], "fer2013-gpu")
    with pytest.raises(ConfigError, match="weight_decay"):
        parse_settings(["weight_decay=-1"], "fer2013-gpu")


def test_bad_recipe_settings_are_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    from benchmarks.__main__ import main

    assert main(["--only", "recipe", "--recipe-set", "lr_schedule=stepwise"]) == 2
    assert "lr_schedule" in capsys.readouterr().err


def test_recipe_needs_faces_in_full_mode(tmp_path: Path) -> None:
    from benchmarks import recipe

    with pytest.raises(Skip, match="--recipe-data"):
        recipe.run(Context(quick=False, out=tmp_path, work=tmp_path))


def test_step_rates_every_variant_and_splits_the_step_by_block(
    quick_run: dict[str, Any],
) -> None:
    """One rate per variant measured, the profile's first; the parts (four blocks and the head)
    add up to the profile's step; the other architectures timed in both precisions; the
    profile's network timed with either BatchNorm in both, and against the lighter network it
    trains where bfloat16 falls back to float32."""
    from benchmarks.step import POLICIES, QUICK_BACKBONES, VARIANTS, WIDTHS

    step = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]["step"]
    variants, parts, backbones, norms, float32 = step["tables"]
    own, lighter = float32["rows"]
    assert own[1] == step["results"]["batchnorm_images_per_s"]["float32"]["fused"]
    assert own[2] == pytest.approx(1.0) and lighter[2] == pytest.approx(lighter[1] / own[1])
    assert lighter[1] == step["results"]["float32_network_images_per_s"] > 0
    assert [row[0] for row in norms["rows"]] == list(POLICIES)
    for row in norms["rows"]:
        assert row[1] > 0 and row[2] > 0 and row[3] == pytest.approx(row[2] / row[1])
    assert [row[0] for row in backbones["rows"]] == list(QUICK_BACKBONES)
    for row in backbones["rows"]:
        assert all(rate > 0 for rate in row[1:3])
        assert row[3] == pytest.approx(row[2] / row[1])
    assert set(step["results"]["backbone_images_per_s"][QUICK_BACKBONES[0]]) == set(POLICIES)
    assert [row[0] for row in variants["rows"]] == [v[0] for v in VARIANTS[:2]]  # --quick
    assert variants["rows"][0][5] == pytest.approx(1.0)
    assert all(row[4] > 0 and row[6] > 0 for row in variants["rows"])
    assert len(step["results"]["prefix_images_per_s"]) == len(WIDTHS)
    assert len(parts["rows"]) == len(WIDTHS) + 1
    total_ms = 1000.0 / step["results"]["images_per_s"][VARIANTS[0][0]]
    assert sum(row[1] for row in parts["rows"]) == pytest.approx(total_ms)


def test_step_times_the_same_network_with_either_batchnorm() -> None:
    """The unfused variant is the profile's network with Keras's BatchNorm in every place of the
    fused one, and nothing else changed."""
    import keras

    from benchmarks.step import _norm_model
    from helpers.models.backbones import FusedBatchNormalization

    def norms(model: Any) -> list[type]:
        return [
            type(x)
            for x in model.layers[2].layers
            if isinstance(x, keras.layers.BatchNormalization)
        ]

    fused, plain = (_norm_model(f, "float32", 48, 0) for f in (True, False))
    assert norms(fused) == [FusedBatchNormalization] * 8
    assert norms(plain) == [keras.layers.BatchNormalization] * 8
    assert [x.name for x in fused.layers[2].layers[1:]] == [
        x.name for x in plain.layers[2].layers[1:]
    ]
    assert fused.count_params() == plain.count_params()
    lighter = _norm_model(True, "float32", 48, 0, "float32_backbone_options")
    assert lighter.layers[2].get_layer("block1_conv1").filters == 24
    assert fused.layers[2].get_layer("block1_conv1").filters == 32


def test_levers_need_fer2013_in_full_mode_and_known_names(tmp_path: Path) -> None:
    from benchmarks import levers

    with pytest.raises(Skip, match="--levers-data"):
        levers.run(Context(quick=False, out=tmp_path, work=tmp_path))
    assert levers.parse_levers("cosine, plateau") == ("cosine", "plateau")
    with pytest.raises(ValueError, match="mixup"):
        levers.parse_levers("mixup")


def test_coursework_reader_agrees_with_the_project_reader(tmp_path: Path) -> None:
    """The baseline does the same job: same ids, expressions and valences."""
    import numpy as np

    from benchmarks.ingestion import coursework_records, project_records
    from helpers.data.synthetic import generate_zip

    zip_path = tmp_path / "demo.zip"
    generate_zip(zip_path, n=24, size=48, seed=1, progress=False)
    project = project_records(zip_path).set_index("id").sort_index()
    scratch = tmp_path / "extracted"
    coursework, steps = coursework_records(zip_path, scratch)
    coursework = coursework.set_index("id").sort_index()
    assert list(coursework.index) == list(project.index)
    assert (coursework["expression"] == project["expression"]).all()
    np.testing.assert_allclose(coursework["valence"], project["valence"], atol=1e-6)
    assert steps["extract_s"] >= 0 and steps["load_s"] >= 0


def test_comparison_ratio_is_above_one_when_the_project_is_better() -> None:
    faster = comparison("s", 1.0, 5.0, "s", higher_is_better=False, target_ratio=5.0)
    assert faster["ratio"] == pytest.approx(5.0) and faster["met"] is True
    slower = comparison("img/s", 100.0, 400.0, "images/s", higher_is_better=True, target_ratio=3.0)
    assert slower["ratio"] == pytest.approx(0.25) and slower["met"] is False
    told = comparison("x", 1.0, 1.0, "bytes", higher_is_better=False, met=True)
    assert told["met"] is True and told["target"] is None


def test_render_lists_skipped_benchmarks_with_their_reason() -> None:
    report = {
        "mode": "quick",
        "command": "python -m benchmarks",
        "started": "now",
        "machine": {"cpu_model": "cpu", "cpus_usable": 2, "cpu_count": 2},
        "benchmarks": {
            "inference": {"status": "skipped", "reason": "not available: x", "seconds": 0.0}
        },
    }
    assert summary_rows(report) == [["inference", "skipped: not available: x", "", "", "", "", ""]]
    assert "**skipped**: not available: x" in render(report)


def test_cells_round_for_reading() -> None:
    assert cell(1234.5) == "1,234" and cell(12.345) == "12.3" and cell(0.5) == "0.50"
    assert cell(float("nan")) == "n/a" and cell(None) == "" and cell("a|b") == "a\\|b"


def test_memory_now_reads_this_process() -> None:
    found = memory_now()
    if sys.platform.startswith("linux"):
        assert found["peak_rss_bytes"] >= found["rss_bytes"] > 0


def test_unknown_benchmark_name_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    from benchmarks.__main__ import main

    assert main(["--only", "nope"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_keras_verdict_says_when_the_project_is_not_ahead() -> None:
    from benchmarks.input_pipeline import keras_verdict

    assert "is ahead" in keras_verdict(224, 900.0, 600.0)
    behind = keras_verdict(224, 300.0, 600.0)
    assert "NOT ahead" in behind and "wall" in behind


def test_bottleneck_limit_is_the_slower_side() -> None:
    from benchmarks.bottleneck import limit

    assert limit(pipeline=300.0, model=900.0) == "input pipeline"
    assert limit(pipeline=900.0, model=300.0) == "model"


def test_bad_scale_sizes_are_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    from benchmarks.__main__ import main

    assert main(["--only", "scale", "--scale-sizes", "4000"]) == 2
    assert "scale-sizes" in capsys.readouterr().err


def test_framing_scores_the_faces_as_stored_and_at_every_margin(quick_run: dict[str, Any]) -> None:
    from benchmarks.framing import MARGINS

    bench = json.loads((quick_run["out"] / "benchmarks.json").read_text())["benchmarks"]
    framing = bench["framing"]
    accuracy = framing["results"]["accuracy"]
    measured = framing["results"]["framing"]
    assert measured is not None and 0.1 <= measured["margin"] <= 0.3  # the demo faces: about 0.2
    assert {"as stored", *(str(m) for m in MARGINS), str(measured["margin"])} == set(accuracy)
    assert all(0.0 <= a <= 1.0 for a in accuracy.values())
    assert framing["params"]["found"] > 0
