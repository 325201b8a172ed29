"""Runs of one recipe under several seeds, summed up as mean ± standard deviation per model, and
refused when they are not one recipe."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from helpers.core.errors import ConfigError, DataError
from helpers.evaluation.scoring import write_metrics
from helpers.reporting import seeds


def _run(
    folder: Path,
    seed: int,
    scores: dict[str, tuple[float, float | None]],
    profile: str = "fer2013-cpu",
    data: str = "d1",
    demo: bool = False,
    collapsed: tuple[str, ...] = (),
) -> Path:
    """A run folder as ./run_all.sh leaves it: its manifest and a metrics JSON per model
    (model -> (macro-F1, valence CCC or None))."""
    for model, (f1, ccc) in scores.items():
        metrics = {
            "model": model,
            "n": 100,
            "expression": {"accuracy": f1 + 0.05, "f1_macro": f1, "f1_macro_ci": [f1 - 0.02, f1]},
            "valence": None if ccc is None else {"ccc": ccc},
            "arousal": None,
            "landmarks": None,
        }
        if model in collapsed:
            metrics["health"] = {
                "collapsed": True,
                "collapsed_heads": ["expression"],
                "expression": {"collapsed": True, "reasons": ["one class for 95% of faces"]},
            }
        write_metrics(metrics, folder / "metrics" / f"{model}.json")
    manifest = {
        "profile": {"name": profile},
        "seed": seed,
        "data": {"path": f"/data/{data}.zip", "sha256": data, "demo": demo},
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _three(tmp_path: Path) -> list[Path]:
    return [
        _run(tmp_path / "s0", 0, {"cnn": (0.60, 0.50), "vgg": (0.40, None)}),
        _run(tmp_path / "s1", 1, {"cnn": (0.64, 0.54), "vgg": (0.44, None)}),
        _run(tmp_path / "s2", 2, {"cnn": (0.62, 0.58)}),
    ]


def test_each_model_gets_the_mean_and_spread_of_its_runs(tmp_path: Path) -> None:
    table = seeds.seeds_table(_three(tmp_path)).set_index("model")
    assert table.loc["cnn", "runs"] == 3 and table.loc["cnn", "seeds"] == "0, 1, 2"
    assert table.loc["cnn", "expression_f1_macro_mean"] == pytest.approx(0.62)
    sd = statistics.stdev([0.60, 0.64, 0.62])
    assert table.loc["cnn", "expression_f1_macro_sd"] == pytest.approx(sd)
    assert table.loc["cnn", "expression_accuracy_mean"] == pytest.approx(0.67)
    assert table.loc["cnn", ["valence_ccc_min", "valence_ccc_max"]].tolist() == [0.50, 0.58]
    assert table.loc["vgg", "runs"] == 2 and table.loc["vgg", "seeds"] == "0, 1"
    assert pd.isna(table.loc["vgg", "valence_ccc_mean"])
    text = seeds.to_markdown(seeds.seeds_table(_three(tmp_path)))
    assert "| cnn | 0, 1, 2 | 0.670 ± 0.020 | 0.620 ± 0.020 | 0.540 ± 0.040 |" in text
    assert "| vgg | 0, 1 | 0.470 ± 0.028 (2 of 3 runs) | 0.420 ± 0.028 (2 of 3 runs) |  |" in text
    assert table.loc["cnn", "valence_ccc_n"] == 3 and table.loc["vgg", "valence_ccc_n"] == 0
    assert "over 3 runs of the `fer2013-cpu` profile" in text and "demo" not in text


def test_a_mean_that_rounds_to_zero_is_written_without_a_minus_sign(tmp_path: Path) -> None:
    """Two constant valence heads score CCC -1e-10: the table says 0.000, not -0.000."""
    runs = [_run(tmp_path / f"s{seed}", seed, {"cnn": (0.6, -1e-10)}) for seed in (0, 1)]
    text = seeds.to_markdown(seeds.seeds_table(runs))
    assert "| 0.000 ± 0.000 |" in text and "-0.000" not in text


def test_a_negative_mean_has_the_minus_sign_methods_md_has(tmp_path: Path) -> None:
    runs = [_run(tmp_path / f"s{seed}", seed, {"cnn": (0.6, ccc)}) for seed, ccc in ((0, -0.05),)]
    runs.append(_run(tmp_path / "s1", 1, {"cnn": (0.6, 0.0)}))
    text = seeds.to_markdown(seeds.seeds_table(runs))
    assert "| \u22120.025 ± 0.035 |" in text and "-0.025" not in text


def test_a_head_that_learned_nothing_is_counted_not_hidden(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / "a", 0, {"cnn": (0.60, None)}),
        _run(tmp_path / "b", 1, {"cnn": (0.13, None)}, collapsed=("cnn",)),
    ]
    table = seeds.seeds_table(runs)
    assert table.loc[0, "expression_collapsed"] == 1
    assert table.loc[0, "expression_f1_macro_mean"] == pytest.approx(0.365)
    assert "0.365 ± 0.332 (1 learned nothing)" in seeds.to_markdown(table)


def test_runs_that_are_not_one_recipe_under_several_seeds_are_refused(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", 0, {"cnn": (0.6, None)})
    with pytest.raises(ConfigError, match="needs two runs or more, got 1"):
        seeds.check_runs([a])
    other = _run(tmp_path / "b", 1, {"cnn": (0.6, None)}, profile="cpu")
    with pytest.raises(ConfigError, match="different profiles \\(a: fer2013-cpu, b: cpu\\)"):
        seeds.check_runs([a, other])
    data = _run(tmp_path / "c", 1, {"cnn": (0.6, None)}, data="d2")
    with pytest.raises(ConfigError, match=r"read different data \(a: /data/d1\.zip, c: /data/d2"):
        seeds.check_runs([a, data])
    twin = _run(tmp_path / "d", 0, {"cnn": (0.6, None)})
    with pytest.raises(ConfigError, match="runs a, d share seed 0"):
        seeds.check_runs([a, twin])
    with pytest.raises(ConfigError, match="a run folder is given twice"):
        seeds.check_runs([a, a])
    ablation = _run(tmp_path / "g", 1, {"cnn": (0.6, None)})
    manifest = json.loads((ablation / "manifest.json").read_text())
    manifest["parameters"] = {"augment": {"noise_p": 0.3}}
    (ablation / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match=r"different --set parameters \(a: none; g: {'augment'"):
        seeds.check_runs([a, ablation])
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match=r"no manifest\.json"):
        seeds.check_runs([a, tmp_path / "e"])
    unscored = _run(tmp_path / "f", 1, {})
    with pytest.raises(DataError, match="no test metrics"):
        seeds.seeds_table([a, unscored])


def test_the_demo_set_is_drawn_from_each_seed_and_the_note_says_so(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / f"s{k}", k, {"cnn": (0.9, None)}, profile="cpu", data=f"demo{k}", demo=True)
        for k in range(2)
    ]
    checked = seeds.check_runs(runs)
    assert checked.demo and checked.seeds == (0, 1)
    assert "the spread includes it" in seeds.to_markdown(seeds.seeds_table(runs))


def test_the_files_and_the_command(tmp_path: Path, capsys) -> None:
    runs = _three(tmp_path)
    out = tmp_path / "summary"
    assert seeds.main([*map(str, runs), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["seeds.csv", "seeds.md", "seeds.tex"]
    printed = capsys.readouterr().out
    assert "| cnn | 0, 1, 2 |" in printed and f"wrote {out / 'seeds.csv'}" in printed
    csv = pd.read_csv(out / "seeds.csv")
    assert csv["runs"].tolist() == [3, 2] and set(csv["profile"]) == {"fer2013-cpu"}
    assert csv["expression_collapsed"].dtype.kind == "i"
    tex = (out / "seeds.tex").read_text()
    assert r"0.620 & \multicolumn" not in tex and r"{\footnotesize $\pm$ 0.020}" in tex
    assert r"\label{tab:seeds-summary}" in tex and "±" not in tex
    assert seeds.main([str(runs[0])]) == 2
    assert "needs two runs" in capsys.readouterr().err
    shown = subprocess.run(
        [sys.executable, "-m", "helpers.seeds", *map(str, runs[:2])], capture_output=True, text=True
    )
    assert (
        shown.returncode == 0 and "| cnn | 0, 1 | 0.670 ± 0.028 | 0.620 ± 0.028 |" in shown.stdout
    )


def test_a_metric_missing_from_one_run_says_over_how_many_runs(tmp_path: Path) -> None:
    runs = [
        _run(tmp_path / "a", 0, {"cnn": (0.60, 0.50)}),
        _run(tmp_path / "b", 1, {"cnn": (0.62, None)}),
        _run(tmp_path / "c", 2, {"cnn": (0.64, 0.54)}),
    ]
    text = seeds.to_markdown(seeds.seeds_table(runs))
    assert "| cnn | 0, 1, 2 | 0.670 ± 0.020 | 0.620 ± 0.020 | 0.520 ± 0.028 (2 of 3 runs) |" in text


def test_the_folder_of_a_seeds_series_stands_for_its_runs(tmp_path: Path) -> None:
    series = tmp_path / "seeds01"
    runs = [_run(series / f"seed-{k}", k, {"cnn": (0.6 + k / 100, None)}) for k in (0, 1, 10)]
    (series / "seeds.md").write_text("| the series' own summary |")
    checked = seeds.check_runs([series])
    assert checked.runs == tuple(runs) and checked.seeds == (0, 1, 10)


def test_a_folder_given_twice_is_named_alone(tmp_path: Path) -> None:
    a, b, c = _three(tmp_path)
    with pytest.raises(ConfigError) as caught:
        seeds.check_runs([a, b, c, b])
    assert str(caught.value) == f"a run folder is given twice: {b}"
