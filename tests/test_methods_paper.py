"""helpers.reporting.methods as a paper takes it: the rules that ran stated as they ran, what
another machine changes, every version the text relies on, the facts a reviewer asks for, and
notation (−, ±, ×, →, 10⁻⁶, ranges) that prints as a paper's in Markdown and in LaTeX."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from helpers.core import paths
from helpers.core.jsonio import read_json, write_json
from helpers.core.run_folder import RunFolder
from helpers.data.augment import AugmentConfig, AugmentSettings
from helpers.evaluation import paired, scoring
from helpers.reporting import notation
from helpers.reporting.methods import RELIED_ON, latex_code, latex_paragraph, methods
from helpers.run import runner
from helpers.train import backend
from test_methods import _card, _metrics, _run, _spaced

# resnet50's validation in the main job: flip led by 0.022 in macro-F1, but its paired interval
# reached below 0, so one view was kept.
VALIDATION = {
    "split": "val",
    "n": 399,
    "modes": {
        "none": {"expression": {"accuracy": 0.882, "f1_macro": 0.8582}},
        "flip": {"expression": {"accuracy": 0.897, "f1_macro": 0.8801}},
        "tencrop": {"expression": {"accuracy": 0.830, "f1_macro": 0.8083}},
    },
    "leads": {
        "flip": {"metric": "f1_macro", "lead": 0.0219, "ci": [-0.002, 0.048]},
        "tencrop": {"metric": "f1_macro", "lead": -0.0499, "ci": [-0.09, -0.01]},
    },
}


def _body(latex: str) -> str:
    """methods.tex without its comment lines."""
    return "\n".join(line for line in latex.splitlines() if not line.startswith("%"))


def test_the_manifest_records_every_package_the_text_relies_on() -> None:
    recorded = runner.package_versions()
    for name in ("scipy", "pillow", "ImageHash", "krippendorff"):
        assert name in runner.PACKAGES and recorded[name], name  # pinned, so installed


def test_the_model_card_records_the_machines_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "gpu_models", list)  # whatever GPUs the test machine has
    memory = backend.machine()["memory_gib"]
    assert isinstance(memory, float) and memory > 0


def test_notebook_03_records_the_near_duplicate_distance_the_splits_used() -> None:
    notebook = json.loads((paths.NOTEBOOKS_DIR / "03_augment.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"]]
    recorded = next(cell for cell in cells if "aug.AugmentSettings(" in cell)
    assert "near_distance=near_distance" in recorded
    settings = AugmentSettings(near_distance=3)
    assert AugmentSettings.from_dict(settings.to_dict()) == settings


def test_the_rules_resamples_are_written_as_the_text_writes_numbers() -> None:
    assert f"({scoring.TTA_LEAD_BOOT:,} resamples of the same faces" in scoring.TTA_RULE


def test_the_tta_sentence_is_the_rule_the_choice_was_made_by(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoring, "tta_on_validation", lambda *args, **kwargs: VALIDATION)
    mode, block = scoring.tta_for_evaluation(None, "auto", pd.DataFrame({"id": ["a"]}))
    assert mode == "none"  # flip scored higher, but not beyond noise
    scores = _metrics(tta=mode, tta_validation=block, without_tta=None)
    text = _spaced(methods(_run(tmp_path / "a", scores=scores)).text)
    assert f"was chosen per model on the validation faces, by the rule that {block['rule']}." in (
        text
    )
    assert block["rule"] == scoring.TTA_RULE
    for said in ("lies above 0", "1,000 resamples", "then the cheaper mode"):
        assert said in text
    assert "by macro-F1 with accuracy breaking ties" not in text
    # a metrics JSON from before the rule was recorded was chosen by the earlier rule
    earlier = _metrics(tta_validation={"split": "val", "modes": {}, "chosen": "tencrop"})
    text = methods(_run(tmp_path / "b", scores=earlier)).text
    assert (
        "by the rule that the mode with the best validation macro-F1 is used (accuracy breaks "
        "ties, then the cheaper mode)." in text
    )


def test_the_reproduction_says_what_another_machine_changes(tmp_path: Path) -> None:
    params = {**_card()["parameters"], "mixed_precision": "bfloat16"}
    section = methods(_run(tmp_path / "a", card=_card(parameters=params)))
    text = section.text
    assert (
        "another CPU (with or without bfloat16 instructions), a GPU or other library versions "
        "can train other weights from the same seed, and so move figures beyond their intervals"
        in text
    )
    assert "reorder the models" in text and "move the last digits" not in text
    assert (
        "custom_cnn trained in mixed bfloat16 precision, as this CPU has bfloat16 instructions; "
        "a CPU without them trains it in float32." in text
    )
    fell_back = _card(parameters=params, mixed_precision=False, machine={"cpu": "Zen 2"})
    text = methods(_run(tmp_path / "b", card=fell_back)).text
    assert (
        "custom_cnn trained in float32, as this CPU has no bfloat16 instructions; a CPU with "
        "them trains it in mixed bfloat16 precision." in text
    )


def test_a_single_seed_is_named_in_the_checks_and_a_series_member_is_not(
    tmp_path: Path,
) -> None:
    checks = methods(_run(tmp_path / "one")).checks
    assert (
        "These figures come from a single seed: `./run_all.sh --profile fer2013-cpu --data "
        "fer2013.zip --seeds 0,1,2` gives each metric's mean and standard deviation over three "
        "seeds, which a paper should report." in checks
    )
    series = tmp_path / "series"  # ./run_all.sh --seeds 0,1: seed-0/ and seed-1/
    series.mkdir()
    member = shutil.move(_run(tmp_path / "made").root, series / "seed-0")
    (series / "seed-1").mkdir()
    assert not any("single seed" in check for check in methods(member).checks)
    fold = _run(tmp_path / "fold")
    write_json(fold.manifest, {**read_json(fold.manifest), "fold": {"fold": 1, "folds": 5}})
    assert not any("single seed" in check for check in methods(fold).checks)


def test_every_package_the_text_relies_on_is_recorded_and_listed(tmp_path: Path) -> None:
    assert set(RELIED_ON) <= set(runner.PACKAGES)  # what the text relies on is recorded
    run = _run(tmp_path)
    text = methods(run).text
    assert "scipy 1.0, albumentations 1.0, opencv-python-headless 1.0 (Bradski, 2000), " in text
    assert "(Bradski, 2000), pillow 1.0, " in text
    assert "ImageHash 1.0 and krippendorff 1.0." in text
    manifest = read_json(run.manifest)
    older = {k: v for k, v in manifest["packages"].items() if k not in ("scipy", "ImageHash")}
    write_json(run.manifest, {**manifest, "packages": older})
    assert (
        "The versions of scipy and ImageHash, which the text relies on, were not recorded with "
        "the run: requirements.txt pins them; state the versions the run used."
        in methods(run).checks
    )


def test_the_command_names_its_profile_and_the_machine_its_memory(tmp_path: Path) -> None:
    run = _run(tmp_path)
    manifest = read_json(run.manifest)
    write_json(
        run.manifest,
        {**manifest, "profile": {"name": "cpu"}, "command": "./run_all.sh --run-dir reports/x"},
    )
    machine = {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 7.8, "bfloat16_instructions": False}
    write_json(run.card_path("custom_cnn"), _card(machine=machine))
    section = methods(run)
    assert "run as `./run_all.sh --profile cpu --run-dir reports/x`." in section.text
    assert "on the CPU, AMD EPYC (2 logical CPUs, 7.8 GiB of memory, no bfloat16 instructions)" in (
        section.text
    )
    assert "`./run_all.sh --profile cpu --seeds 0,1,2`" in " ".join(section.checks)


def test_the_text_writes_symbols_as_a_paper_does(tmp_path: Path) -> None:
    arch = {**_card()["architecture"], "preprocessing": "inside the model: pixels / 255 -> [0, 1]"}
    section = methods(_run(tmp_path, card=_card(architecture=arch)))
    text = section.text
    for ascii_form in ("+-", "->", "<->", "1e-06", "3x3", "48x48", " x 255", " deg"):
        assert ascii_form not in text, ascii_form
    for symbol in ("±0.1", "3×3", "48×48", "× 255", "±15°", "W − 1 − x", "left↔right", "10⁻⁶"):
        assert symbol in _spaced(text), symbol
    assert "pixels / 255 → [0, 1]" in text and "scale 0.9–1.1" in text
    body = _body(section.latex())
    for latex in (r"$\pm$", r"$\times$", "W~$-$~1~$-$~x", r"$\rightarrow$", r"$10^{-6}$"):
        assert latex in body, latex
    assert r"\mbox{0.671--0.701}" in body and r"\mbox{0.9--1.1}" in body
    for unicode in "±×−→↔–⁻⁶\u00a0":
        assert unicode not in body, unicode


def test_numbers_have_a_minus_sign_one_range_notation_and_no_negative_zero() -> None:
    assert notation.fixed(-6.695e-09) == "0.000"
    assert notation.fixed(-0.0081) == "\u22120.008"
    assert notation.span(-0.0081, 0.0152) == "\u22120.008\u20130.015"
    assert notation.span(0.974, 0.997) == "0.974\u20130.997"
    assert notation.span(-0.075, -0.024) == "\u22120.075 to \u22120.024"
    assert notation.general(1e-6) == "10\u207b\u2076"
    assert notation.general(5e-5) == "5\u00a0×\u00a010\u207b\u2075"
    assert notation.general(0.001) == "0.001"
    assert latex_paragraph("(\u22120.008\u20130.015)") == r"(\mbox{$-$0.008--0.015})"
    assert latex_paragraph("a 10\u207b\u2076 b") == r"a $10^{-6}$ b"


def test_a_range_with_a_negative_end_reads_as_the_others(tmp_path: Path) -> None:
    expression = {
        **_metrics()["expression"],
        "f1_macro": -6.695e-09,
        "f1_macro_ci": [-0.0081, 0.0152],
    }
    text = methods(_run(tmp_path, scores=_metrics(expression=expression))).text
    assert "macro-F1 0.000 (\u22120.008\u20130.015)" in text
    assert " to " not in text.split("**Results")[1].split("The other")[0]
    assert "-0.0" not in text


def test_a_range_with_two_negative_ends_says_to_in_markdown_and_latex(tmp_path: Path) -> None:
    expression = {**_metrics()["expression"], "f1_macro": -0.052, "f1_macro_ci": [-0.0751, -0.0243]}
    section = methods(_run(tmp_path, scores=_metrics(expression=expression)))
    assert "macro-F1 \u22120.052 (\u22120.075 to \u22120.024)" in section.text
    assert "\u2013\u2212" not in section.text
    assert "$-$0.075 to $-$0.024" in _body(section.latex())


def test_code_and_file_names_print_alike_under_any_encoding_and_can_break() -> None:
    assert latex_code("./run_all.sh --profile cpu") == (
        r"\texttt{./\allowbreak{}run\_\allowbreak{}all.\allowbreak{}sh -{}-profile cpu}"
    )
    assert latex_code("metrics/<model>.json") == r"\texttt{metrics/{\char60}model{\char62}.json}"
    sha = "98fe929788befdf1ae15988661ab5b615df2a22bc8995592fb913cda0663a273"
    assert latex_code(sha).count(r"\allowbreak{}") == 7
    assert latex_code(sha).replace(r"\allowbreak{}", "") == r"\texttt{" + sha + "}"


def test_what_a_reviewer_asks_for_is_stated(tmp_path: Path) -> None:
    run = _run(tmp_path)
    manifest = read_json(run.manifest)
    sha = "98fe929788befdf1ae15988661ab5b615df2a22bc8995592fb913cda0663a273"
    write_json(run.manifest, {**manifest, "data": {**manifest["data"], "sha256": sha}})
    config = AugmentConfig.from_dict({"dropout_p": 0.5})
    AugmentSettings(
        mode="both", config=config, balance="upsample", target_per_class=6, near_distance=3
    ).write(run.augment_settings)
    pd.DataFrame({"expression": [0] * 9 + [1] * 6 + [2] * 6, "augmented": False}).to_parquet(
        run.train_table
    )
    for model in ("custom_cnn", "vgg16"):  # two models' predictions: a paired comparison
        write_json(run.metrics_path(model), _metrics(model=model))
        run.predictions_path(model).parent.mkdir(parents=True, exist_ok=True)
        run.predictions_path(model).write_bytes(b"")
    text = methods(run).text
    assert f"(SHA-256 `{sha}`)" in text
    assert "(perceptual hashes at most 3 of their 64 bits apart; Zauner, 2010)" in text
    assert "and 12 for the test (Neutral 2, Happy 2, Sad 2, Surprise 2, Fear 2, Disgust 1" in text
    assert (
        "Neutral (9) kept its own. The training table these counts come from (`train.parquet`) "
        "held 21 faces in all." in text
    )
    assert f"resampled together, {paired.N_BOOT:,} resamples; Efron & Tibshirani" in text
    # a run made before notebook 03 recorded the distance: its default, which run_all ran
    AugmentSettings(mode="both", config=config).write(run.augment_settings)
    assert "(perceptual hashes at most 4 of their 64 bits apart; Zauner, 2010)" in methods(run).text


def test_reasons_a_record_was_left_out_are_a_readers_words(tmp_path: Path) -> None:
    run = _run(tmp_path)
    pd.DataFrame(
        {
            "reason": ["expression out of range", "missing exp", "unreadable val"],
            "outcome": ["dropped"] * 3,
            "count": [40, 20, 1],
            "examples": ["", "", ""],
        }
    ).to_csv(run.ingest_report, index=False)
    text = methods(run).text
    assert (
        "Reading left out 61 records (expression out of range: 40; no expression label: 20; "
        "unreadable valence: 1)." in text
    )
    assert "exp:" not in text


def test_a_temperature_at_the_end_of_its_range_is_not_called_fitted(tmp_path: Path) -> None:
    calibration = {"temperature": 19.99992, "test_ece": [0.114, 0.063], "at_bound": "upper"}
    text = _spaced(methods(_run(tmp_path / "a", scores=_metrics(calibration=calibration))).text)
    assert (
        "0.114 before and 0.063 after temperature scaling (T = 20.00, the upper end of the "
        "range searched, 0.05 to 20: the fit found no optimum inside it, so the error after is "
        "that of the bound)" in text
    )
    older = {"temperature": 19.99992, "test_ece": [0.114, 0.063]}  # a file without at_bound
    text = _spaced(methods(_run(tmp_path / "b", scores=_metrics(calibration=older))).text)
    assert "T = 20.00, the upper end of the range searched" in text
    inside = {"temperature": 0.65, "test_ece": [0.0201, 0.0143], "at_bound": None}
    text = _spaced(methods(_run(tmp_path / "c", scores=_metrics(calibration=inside))).text)
    assert "(T = 0.65)" in text and "range searched" not in text


def test_calibration_and_robustness_say_what_each_number_is(tmp_path: Path) -> None:
    corruptions = {
        "n": 12,
        "clean": {"expression": {"f1_macro": 0.787}},
        "mean": {"expression": {"f1_macro": 0.516}},
        "retained": {"expression": {"f1_macro": 0.656}},
    }
    scores = _metrics(
        tta="flip",
        calibration={"temperature": 0.65, "test_ece": [0.0201, 0.0143]},
        corruptions=corruptions,
    )
    text = _spaced(methods(_run(tmp_path / "a", scores=scores)).text)
    assert (
        "expected calibration error 0.020 before and 0.014 after temperature scaling (T = 0.65);"
        in (text)
    )
    assert (
        "on the corrupted images, one view, macro-F1 0.516 on average (66% of its one-view "
        "clean score, 0.787)" in text
    )
    rose = _metrics(calibration={"temperature": 1.06, "test_ece": [0.030, 0.039]})
    text = _spaced(methods(_run(tmp_path / "b", scores=rose)).text)
    assert (
        "expected calibration error 0.030 before and 0.039 after temperature scaling "
        "(T = 1.06, fitted on the validation faces: it raised the error on the test faces)" in text
    )


@pytest.mark.skipif(not shutil.which("pdflatex"), reason="no pdflatex on this machine")
@pytest.mark.parametrize("encoding", ["T1", "OT1"])
def test_methods_tex_sets_without_an_overfull_line_or_a_missing_glyph(
    tmp_path: Path, encoding: str
) -> None:
    run = _run(tmp_path)
    manifest = read_json(run.manifest)
    sha = "98fe929788befdf1ae15988661ab5b615df2a22bc8995592fb913cda0663a273"
    data = {"path": "/x/affectnet_demo_n4000_px224_seed0.zip", "sha256": sha}
    write_json(run.manifest, {**manifest, "data": data})
    write_json(run.card_path("vgg16"), _card(model="vgg16"))
    per_class = {"Neutral": {"precision": 0.7, "recall": 0.6, "f1": 0.65, "support": 2}}
    expression = {**_metrics()["expression"], "per_class": per_class}
    write_json(run.metrics_path("custom_cnn"), _metrics(expression=expression))
    section = methods(run)
    assert "`metrics/<model>.json`" in section.text  # < and > in typewriter type
    section.write(run)
    fonts = r"\usepackage[T1]{fontenc}" if encoding == "T1" else ""
    (tmp_path / "doc.tex").write_text(
        rf"\documentclass{{article}}{fonts}\usepackage{{booktabs}}\usepackage{{graphicx}}"
        r"\usepackage{natbib}\begin{document}\input{run/methods}\end{document}"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    assert not re.findall(r"Overfull \\hbox|Font Warning", log)
    assert RunFolder(run.root).methods_tex.is_file()


def test_only_a_hex_hash_breaks_every_8_characters_a_word_is_left_to_tex() -> None:
    assert latex_code("keras.applications") == r"\texttt{keras.\allowbreak{}applications}"
    assert latex_code("efficientnetb0_weights") == (
        r"\texttt{efficientnetb0\_\allowbreak{}weights}"
    )
    commit = "3e7d1f11220c1ccaf05846e1e01e4c3a46db712c"
    assert latex_code(f"commit {commit}") == (
        r"\texttt{commit 3e7d1f11\allowbreak{}220c1cca\allowbreak{}f05846e1\allowbreak{}"
        r"e01e4c3a\allowbreak{}46db712c}"
    )


def test_one_tta_rule_recorded_before_and_after_its_digits_were_grouped_is_one_rule() -> None:
    from types import SimpleNamespace

    from helpers.reporting.methods import _tta_rule

    earlier = scoring.TTA_RULE.replace("1,000 resamples", "1000 resamples")
    assert earlier != scoring.TTA_RULE
    chose = [
        SimpleNamespace(model=model, data={"tta_validation": {"chosen": "none", "rule": rule}})
        for model, rule in (("a", earlier), ("b", scoring.TTA_RULE), ("c", " " + earlier))
    ]
    text = _tta_rule(chose, 3, "one view or flip")  # type: ignore[arg-type]
    assert (
        f"was chosen per model on the validation faces, by the rule that {scoring.TTA_RULE}."
        in (text)
    )
    assert "For a" not in text and "1000 resamples" not in text


def test_a_clean_score_on_a_corruption_sample_is_called_the_samples(tmp_path: Path) -> None:
    corruptions = {
        "n": 2000,
        "clean": {"expression": {"f1_macro": 0.231}},
        "mean": {"expression": {"f1_macro": 0.169}},
        "retained": {"expression": {"f1_macro": 0.73}},
    }
    scores = _metrics(corruptions=corruptions)
    scores["n"] = 7178
    text = _spaced(methods(_run(tmp_path, scores=scores)).text)
    assert (
        "on the corrupted images (2,000 of the 7,178 test faces), one view, macro-F1 0.169 on "
        "average (73% of its one-view clean score on those faces, 0.231)" in text
    )
