"""helpers.reporting.methods: a run's methods section written from its own files, with the
works it cites and only those, and the facts the run cannot know listed for the author."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from helpers.core.errors import DataError
from helpers.core.jsonio import read_json, write_json
from helpers.core.records import load_records, make_records, save_records
from helpers.core.run_folder import RunFolder
from helpers.data.augment import AugmentConfig, AugmentSettings
from helpers.data.datasets import READERS
from helpers.models import registry
from helpers.reporting import results
from helpers.reporting.methods import RELIED_ON, methods
from helpers.reporting.references import REFERENCES
from helpers.run import profiles
from helpers.train import backend

# FER-2013 as its reader gives it: the data's own train and test splits, no validation.
COUNTS = {"train": 40, "test": 12}


def _records(source: str = "fer2013") -> pd.DataFrame:
    """Faces of classes 0-6 (no Contempt), with the data's own train/test split."""
    rows = [
        {
            "id": f"{split}/{i}",
            "image": f"/data/{split}/{i}.png",
            "source": source,
            "expression": i % 7,
            "split": split,
        }
        for split, n in COUNTS.items()
        for i in range(n)
    ]
    return make_records(rows)


OLD = object()  # _card(key=OLD): a card written before training recorded that key


def _card(**changes: Any) -> dict[str, Any]:
    """A model card as notebook 04 writes it, for the FER-2013 hour's custom CNN."""
    card: dict[str, Any] = {
        "model": "custom_cnn",
        "architecture": {
            "image_size": 48,
            "channels": 1,
            "heads": ["expression"],
            "n_classes": 8,
            "preprocessing": "inside the model: pixels / 255",
        },
        "parameters": {
            "optimizer": "adam",
            "batch_size": 64,
            "epochs": 60,
            "lr_schedule": "cosine",
            "time_budget_minutes": 55.0,
            "label_smoothing": 0.0,
            "dropout": 0.1,
            "shared_units": 256,
            "backbone_options": {"block_dropout": 0.05, "train_crop": 44},
            "online_augment": True,
            "va_loss": "mse",
        },
        "phases": [{"name": "train", "learning_rate": 0.001, "first_epoch": 0, "end_epoch": 60}],
        "epochs_run": 55,
        "best_epoch": 43,
        "best": {
            "monitor": "val_loss",
            "value": 0.885,
            "epoch": 43,
            "metrics": {"val_accuracy": 0.6759},
        },
        "training_time_s": 3247.9,
        "images_per_s": 466.8,
        "params": 1242408,
        "pretrained_backbone": False,
        "from_scratch": {
            "batchnorm_momentum": 0.9,
            "zero_gamma_branches": 0,
            "he_initialisation": False,
        },
        "weights_fallback": None,
        "mixed_precision": "mixed_bfloat16",
        "machine": {"cpu": "AMD EPYC 9R14", "cores": 2, "bfloat16_instructions": True, "gpus": []},
        "stopped_by_time_budget": True,
    }
    card.update(changes)
    return {k: v for k, v in card.items() if v is not OLD}


def _metrics(**changes: Any) -> dict[str, Any]:
    """A metrics JSON as notebook 05 writes it (the parts the section reads)."""
    scores: dict[str, Any] = {
        "model": "custom_cnn",
        "n": COUNTS["test"],
        "expression": {
            "accuracy": 0.6868,
            "accuracy_ci": [0.6712, 0.7013],
            "f1_macro": 0.6617,
            "f1_macro_ci": [0.6394, 0.6804],
            "ece": 0.0211,
            "labels_left_out": ["Contempt"],
        },
        "valence": None,
        "arousal": None,
        "landmarks": None,
        "ci": {"level": 0.95, "n_boot": 1000, "seed": 0},
        "tta": "tencrop",
        "without_tta": {"expression": {"accuracy": 0.6854, "f1_macro": 0.6554}},
        "tta_validation": {"split": "val", "modes": {}, "chosen": "tencrop"},
        "calibration": {"temperature": 1.0858, "test_ece": [0.0211, 0.0219]},
        "health": {"collapsed": False, "collapsed_heads": []},
    }
    scores.update(changes)
    return scores


def _run(
    tmp_path: Path,
    source: str = "fer2013",
    manifest: bool = True,
    card: dict | None = None,
    scores: dict | None = None,
) -> RunFolder:
    """A run folder with what notebooks 01-05 leave (run_all's manifest where asked)."""
    run = RunFolder(tmp_path / "run")
    records = _records(source)
    save_records(records, run.records)
    split = records.copy()
    split.loc[split.index[:4], "split"] = "val"  # validation drawn from the training faces
    save_records(split, run.splits)
    config = AugmentConfig.from_dict({"dropout_p": 0.5, "dropout_max_holes": 1})
    AugmentSettings(mode="both", config=config, balance="none", seed=0).write(run.augment_settings)
    write_json(run.card_path("custom_cnn"), card or _card())
    write_json(run.metrics_path("custom_cnn"), scores or _metrics())
    if manifest:
        write_json(
            run.manifest,
            {
                "profile": {"name": "fer2013-cpu"},
                "seed": 0,
                "models": ["custom_cnn"],
                "data": {"path": "/home/someone/data/fer2013.zip", "sha256": "377e0e6b34ead61b"},
                "packages": {
                    "python": "3.11.7",
                    "tensorflow-cpu": "2.21.0",
                    **dict.fromkeys(RELIED_ON, "1.0"),
                },
                "git_commit": "8a4dab5558b295c51e5b37143dd797db63abee41",
                "command": "./run_all.sh --profile fer2013-cpu --data "
                "/home/someone/data/fer2013.zip",
            },
        )
    return run


def _spaced(text: str) -> str:
    """The text with its no-break spaces as plain ones, to compare wording."""
    return text.replace("\u00a0", " ")


def _cited_in_text(text: str) -> set[str]:
    """The keys whose author-year form the text carries."""
    return {
        key for key, (short, _) in REFERENCES.items() if f"({short}" in text or f"; {short}" in text
    }


def test_the_section_states_the_runs_own_figures(tmp_path: Path) -> None:
    section = methods(_run(tmp_path))
    text = section.text
    assert section.headings() == [
        "Data",
        "Splits",
        "Augmentation",
        "custom_cnn",
        "Evaluation",
        "Results on the test faces",
        "Software and reproduction",
    ]
    assert "52 faces of FER-2013 (Goodfellow et al., 2013), read from `fer2013.zip`" in text
    assert "the data has no Contempt" in text
    # 40 training faces, 4 of them drawn for validation; the data's own test split kept
    assert (
        "The training split held 36 faces; 4 were held out for validation (the epoch kept, the "
        "test-time augmentation and the calibration temperature chosen on them) and 12 for the "
        "test (Neutral 2, Happy 2, Sad 2, Surprise 2, Fear 2, Disgust 1, Anger 1)." in text
    )
    assert (
        "The test faces are the data's own test split, FER-2013's PublicTest faces (12). "
        "The data's own training split was kept." in text
    )
    assert "validation faces were drawn from the training images, stratified" in text
    assert "coarse dropout (p 0.5; 1 hole of" in text
    assert "sets a rectangle to zero, as Cutout does (DeVries & Taylor, 2017)" in text
    assert "1,242,408 parameters" in text
    assert "a random 44×44 window of each face, at inference the centre window" in text
    assert "Adam (Kingma & Ba, 2015), batch 64, at a learning rate of 0.001" in text
    assert "annealed to 10⁻⁶ along a cosine (Loshchilov & Hutter, 2017) over a 55-minute" in text
    assert "mixed bfloat16 precision" in text
    assert "It ran 55 epochs (stopped by the time budget) in 54.1 minutes at 467 images/s" in text
    assert "on the CPU, AMD EPYC 9R14 (2 logical CPUs, bfloat16 instructions)" in text
    assert "epoch 43, validation accuracy 0.676" in text
    # the metrics JSON's figures, to the digit shown, with their intervals
    assert (
        "custom_cnn, with ten-crop: accuracy 0.687 (0.671–0.701), macro-F1 0.662 "
        "(0.639–0.680); on one view accuracy 0.685, macro-F1 0.655; expected calibration error "
        "0.021 before and 0.022 after temperature scaling (T = 1.09, fitted on the validation "
        "faces: it raised the error on the test faces)."
    ) in _spaced(text)
    assert "over the classes the test faces have" in text
    assert "chosen per model on the validation faces" in text
    # reproducible elsewhere: no folder of this machine in the command
    assert "run as `./run_all.sh --profile fer2013-cpu --data fer2013.zip`" in text
    assert "/home/someone" not in section.markdown()
    assert "commit 8a4dab5558b2" in text and "Seed 0 fixes" in text
    assert [check.partition(":")[0] for check in section.checks] == [
        "These figures come from a single seed"
    ]


def test_every_work_cited_is_in_the_bibliography_and_no_other(tmp_path: Path) -> None:
    section = methods(_run(tmp_path))
    entries = re.findall(r"^@\w+\{([^,]+),", section.bibtex, flags=re.MULTILINE)
    assert entries == list(section.cited)
    assert set(entries) == _cited_in_text(section.text)
    # what the run did not use is not cited: no label smoothing, mixup, weight decay, landmarks
    for unused in (
        "szegedy2016rethinking",
        "zhang2018mixup",
        "loshchilov2019decoupled",
        "sagonas2016300",
        "lin1989concordance",
        "deng2009imagenet",
    ):
        assert unused not in section.cited


def test_a_technique_is_cited_where_a_model_used_it(tmp_path: Path) -> None:
    params = {
        **_card()["parameters"],
        "label_smoothing": 0.1,
        "lr_schedule": "plateau",
        "mixing": {"mode": "mixup", "alpha": 0.2},
        "weight_decay": 0.05,
    }
    section = methods(_run(tmp_path, card=_card(parameters=params)))
    assert "cross-entropy with label smoothing 0.1 (Szegedy et al., 2016)" in section.text
    assert "mixup (Zhang et al., 2018)" in section.text
    assert "decoupled weight decay 0.05 (Loshchilov & Hutter, 2019)" in section.text
    assert "the rate multiplied by 0.5 when the validation loss stalled for 2" in section.text
    assert "loshchilov2017sgdr" not in section.cited


def test_every_reference_is_well_formed_and_every_source_of_one_resolves() -> None:
    for key, (short, entry) in REFERENCES.items():
        assert re.match(rf"@\w+\{{{key},\n", entry), key
        assert entry.count("{") == entry.count("}"), key
        assert re.search(r"\d{4}", short), key
        assert re.search(r"year = \{\d{4}\}", entry), key
    named = [spec.reference for spec in map(registry.get, registry.list_models())]
    named += [reader.reference for reader in READERS.values()]
    assert all(key in REFERENCES for key in named if key)
    assert registry.get("vgg16").reference == "simonyan2015very"
    assert READERS["fer2013"].reference == "goodfellow2013challenges"


def test_what_the_run_cannot_know_is_listed_to_check(tmp_path: Path) -> None:
    collapsed = _metrics(
        health={
            "collapsed": True,
            "collapsed_heads": ["expression"],
            "expression": {"top_class": "Happy", "top_share": 0.95},
        }
    )
    section = methods(
        _run(
            tmp_path,
            source="folders",
            manifest=False,
            card=_card(weights_fallback="ImageNet weights could not be downloaded (offline)"),
            scores=collapsed,
        )
    )
    checks = "\n".join(section.checks)
    assert "The `folders` reader reads a layout, not one data set" in checks
    assert "No manifest.json" in checks
    assert "custom_cnn was to start from ImageNet weights" in checks and "(offline)" in checks
    assert "custom_cnn: its expression head learned nothing" in checks
    assert "(expression learned nothing: it predicts Happy for 95% of the faces)" in section.text
    assert "its agreement with the true labels was near chance (Cohen's kappa below 0.1)" in (
        _spaced(section.text)
    )
    # Spread over the classes at chance, the majority class as often as it occurs: no one class.
    expression = {"top_class": "Neutral", "top_share": 0.85, "one_class": False}
    near_chance = _metrics(health={**collapsed["health"], "expression": expression})
    text = methods(_run(tmp_path / "b", source="folders", scores=near_chance)).text
    assert "(expression learned nothing)" in text and "predicts Neutral" not in text
    # A health check without Cohen's kappa predates the rule stated: the author is asked to rerun.
    assert "custom_cnn: judged by an earlier collapse rule" in checks
    current = {**expression, "kappa": 0.02}
    rerun = _metrics(health={**collapsed["health"], "expression": current})
    again = "\n".join(methods(_run(tmp_path / "c", source="folders", scores=rerun)).checks)
    assert "earlier collapse rule" not in again
    assert "52 faces in the layout the `folders` reader reads" in section.text
    assert "### Before you use this text" in section.markdown()


def test_the_demo_set_and_a_model_not_evaluated_are_named(tmp_path: Path) -> None:
    run = _run(tmp_path, source="affectnet")
    manifest = run.manifest.read_text().replace('"sha256"', '"demo": true, "sha256"')
    run.manifest.write_text(manifest)
    he = {"batchnorm_momentum": None, "zero_gamma_branches": 0, "he_initialisation": True}
    write_json(run.card_path("vgg16"), _card(model="vgg16", params=14_883_538, from_scratch=he))
    section = methods(run)
    checks = "\n".join(section.checks)
    assert "synthetic demo set" in section.text and "synthetic demo set" in checks
    assert "vgg16 was trained but not evaluated" in checks
    assert "VGG16 (Simonyan & Zisserman, 2015) as `keras.applications` builds it" in section.text
    # VGG16 has no BatchNorm: He initialisation, cited for it alone
    assert "He initialisation (He et al., 2015), as it has no BatchNorm" in section.text
    assert "he2015delving" in section.cited and "goyal2017accurate" not in section.cited


def test_a_preparation_from_scratch_is_cited_only_where_the_network_had_it(
    tmp_path: Path,
) -> None:
    plain = methods(_run(tmp_path / "plain"))  # the custom CNN: BatchNorm, no residual branch
    assert (
        "It was randomly initialised and prepared to learn from scratch: BatchNorm statistics "
        "at momentum 0.9." in plain.text
    )
    assert not {"goyal2017accurate", "he2015delving"} & set(plain.cited)
    assert "goyal2017accurate" not in plain.bibtex and "he2015delving" not in plain.bibtex
    recorded = {"batchnorm_momentum": 0.9, "zero_gamma_branches": 4, "he_initialisation": False}
    run = _run(tmp_path / "residual", card=_card(from_scratch=recorded))
    write_json(run.card_path("resnet50"), _card(model="resnet50", from_scratch=recorded))
    residual = methods(run)
    assert "residual branch at zero (Goyal et al., 2017)" in residual.text
    assert "It was randomly initialised and prepared as above." in residual.text
    assert "he2015delving" not in residual.cited


def test_a_card_that_does_not_record_the_preparation_claims_none(tmp_path: Path) -> None:
    """Written before training recorded it: no initialisation is cited from what the network
    is assumed to be, and the author is asked to say what it was."""
    run = _run(tmp_path / "old", card=_card(from_scratch=OLD))
    write_json(run.card_path("vgg16"), _card(model="vgg16", from_scratch=OLD))
    section = methods(run)
    assert section.text.count("It was randomly initialised.") == 2
    assert "BatchNorm statistics at momentum" not in section.text
    assert not {"goyal2017accurate", "he2015delving"} & set(section.cited)
    assert (
        "vgg16's model card does not record how its randomly initialised network was prepared "
        "to learn from scratch: describe it, or train it again to record it."
    ) in section.checks


def test_write_puts_the_section_and_its_bibtex_in_the_run_folder(tmp_path: Path) -> None:
    run = _run(tmp_path, source="folders")
    section = methods(run)
    written = section.write(run)
    assert written == (run.methods, run.methods_tex, run.references)
    assert run.methods.read_text() == section.markdown()
    assert run.references.read_text().count("@") == len(section.cited)


def test_a_folder_without_records_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a run folder") as error:
        methods(tmp_path)
    assert str(tmp_path) in str(error.value)


def test_the_model_card_names_the_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx512_bf16\n")
    monkeypatch.setattr(backend, "CPUINFO", str(info))
    monkeypatch.setattr(backend, "gpu_models", list)  # whatever GPUs the test machine has
    assert backend.cpu_name() == "AMD EPYC 9R14"
    machine = backend.machine()
    assert machine["cpu"] == "AMD EPYC 9R14" and machine["bfloat16_instructions"] is True
    assert isinstance(machine["cores"], int) and machine["gpus"] == []


def test_the_terminal_line_says_where_the_section_is_and_what_to_check(tmp_path: Path) -> None:
    clean = methods(_run(tmp_path / "a"))
    assert clean.note() == (
        f"methods section in methods.md and methods.tex, {len(clean.cited)} works in "
        "references.bib; 1 thing to check under it"  # the single seed
    )
    flagged = methods(_run(tmp_path / "b", source="folders", manifest=False))
    assert flagged.note().endswith("; 4 things to check under it")


def test_the_latex_section_cites_with_natbib_and_escapes_the_text(tmp_path: Path) -> None:
    section = methods(_run(tmp_path, source="folders"))
    latex = section.latex()
    assert r"\paragraph{Data.} The data are 52 faces in the layout the \texttt{folders}" in latex
    assert r"\paragraph{custom\_cnn.}" in latex
    assert r"Adam \citep{kingma2015adam}, batch 64" in latex
    assert r"95\%, percentile bootstrap" in latex
    assert "% CHECK: The `folders` reader reads a layout" in latex
    body = "\n".join(line for line in latex.splitlines() if not line.startswith("%"))
    assert "(Kingma & Ba" not in body and "**" not in body and "`" not in body
    assert body.count("{") == body.count("}")
    assert set(re.findall(r"\\citep\{([^}]+)\}", body)) <= set(section.cited)
    written = section.write(tmp_path / "run")
    assert [p.name for p in written] == ["methods.md", "methods.tex", "references.bib"]


def test_the_results_table_bolds_each_tasks_best_and_marks_a_head_that_learned_nothing(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path)
    weak = _metrics(
        model="vgg16",
        tta="none",
        expression={
            "accuracy": 0.30,
            "accuracy_ci": [0.20, 0.40],
            "f1_macro": 0.05,
            "f1_macro_ci": [0.03, 0.07],
        },
        health={
            "collapsed": True,
            "collapsed_heads": ["expression"],
            "expression": {
                "collapsed": True,
                "reasons": ["Happy for 95%"],
                "top_class": "Happy",
                "top_share": 0.95,
            },
        },
    )
    write_json(run.metrics_path("vgg16"), weak)
    table = results.results_table(run)
    assert list(table["model"]) == ["custom_cnn", "vgg16"]
    assert list(table["expression_best"]) == [True, False]
    assert list(table["expression_learned"]) == [True, False]
    assert table.loc[0, "expression_f1_macro_ci_low"] == pytest.approx(0.6394)
    shown = results.shown(table)
    assert list(shown.columns) == ["Model", "Parameters", "Accuracy", "Macro-F1", "TTA"]
    assert shown.loc[0, "Macro-F1"] == "**0.662 [0.639, 0.680]**"
    assert shown.loc[0, "Accuracy"] == "0.687 [0.671, 0.701]"  # bold: the headline metric only
    assert shown.loc[1, "Macro-F1"] == "0.050 [0.030, 0.070]\u2020"
    assert list(shown["TTA"]) == ["ten-crop", "one view"]
    latex = results.to_latex(table, caption="FER-2013, PublicTest.")
    assert r"\toprule" in latex and r"\label{tab:results-run}" in latex
    assert r"custom\_cnn & 1,242,408 & 0.687 & \textbf{0.662} & ten-crop \\" in latex
    assert r"{\footnotesize [0.639, 0.680]}" in latex
    assert r"0.050$^\dagger$" in latex and r"$^\dagger$ a head that learned nothing" in latex
    assert latex.count(r"\begin{") == latex.count(r"\end{")
    csv_path, tex_path = results.write_results(run)
    assert pd.read_csv(csv_path)["expression_accuracy"].tolist() == [0.6868, 0.30]
    assert csv_path.read_text().splitlines()[1].startswith("custom_cnn,1242408,")
    assert tex_path.read_text() == results.to_latex(table)
    assert "| custom_cnn | 1,242,408 |" in results.to_markdown(table)


def test_a_run_without_metrics_writes_no_results_table(tmp_path: Path) -> None:
    run = _run(tmp_path)
    run.metrics_path("custom_cnn").unlink()
    assert results.write_results(run) is None
    assert not run.results_csv.exists()
    assert results.to_markdown(results.results_table(run)).startswith("No model has")


def test_duplicates_across_the_datas_own_splits_are_stated_and_listed_to_check(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path)
    assert "kept together in the splits this run drew." in methods(run).text  # no leakage table
    leakage = run.eda_dir / "leakage.csv"
    leakage.parent.mkdir(parents=True)
    pd.DataFrame(columns=["id_a", "id_b", "distance", "kind", "split_a", "split_b"]).to_csv(
        leakage, index=False
    )
    assert "no duplicate pair crosses two splits" in methods(run).text
    pd.DataFrame(
        {
            "id_a": ["train/5", "test/1", "train/7"],
            "id_b": ["test/0", "train/6", "train/0"],
            "distance": [0, 0, 3],
            "kind": ["exact", "exact", "near"],
            "split_a": ["train", "test", "train"],
            "split_b": ["test", "train", "val"],
        }
    ).to_csv(leakage, index=False)
    section = methods(run)
    assert (
        "3 pairs of duplicate or near-duplicate images cross the splits the data came with "
        "(2 train-test, 1 train-val)" in section.text
    )
    assert "no face or a copy" not in section.text
    assert any("eda/leakage.csv" in check for check in section.checks)


def _left_out_before_the_split(tmp_path: Path) -> RunFolder:
    """A FER-2013 run whose notebook 03 left out three training faces with an exact copy
    labelled otherwise (02 lists them) and one undecodable, keeping two such copies in the
    data's own test split; 02's leakage table lists pairs with faces 03 left out."""
    run = _run(tmp_path)
    splits = pd.read_parquet(run.splits)
    gone = ["train/10", "train/11", "train/12", "train/13"]
    save_records(make_records(splits[~splits["id"].isin(gone)].to_dict("records")), run.splits)
    run.eda_dir.mkdir(parents=True)
    pd.DataFrame(
        {
            "id": ["train/10", "train/11", "train/12", "test/3", "test/4"],
            "expression": ["Anger", "Happy", "Sad", "Fear", "Sad"],
            "copy_of": ["train/10", "train/10", "train/12", "test/3", "test/3"],
        }
    ).to_csv(run.eda_dir / "label_conflicts.csv", index=False)
    pd.DataFrame(
        {
            "id_a": ["train/10", "train/5", "train/13"],
            "id_b": ["test/0", "test/1", "test/2"],
            "distance": [0, 0, 2],
            "kind": ["exact", "exact", "near"],
            "split_a": ["train", "train", "train"],
            "split_b": ["test", "test", "test"],
        }
    ).to_csv(run.eda_dir / "leakage.csv", index=False)
    return run


def test_faces_left_out_before_the_split_are_counted(tmp_path: Path) -> None:
    """The data paragraph counts all records as notebooks 01 and 02 do, then says what the
    splits lack and which conflicting copies the test split keeps."""
    text = _spaced(methods(_left_out_before_the_split(tmp_path)).text)
    assert "The data are 52 faces of FER-2013" in text  # as notebook 01 read them
    assert (
        "Before the split, 3 faces of the data's own training split were left out as exact "
        "copies of another face labelled otherwise (neither label can be trusted over the "
        "other), and 1 whose image would not decode, so the splits hold 48 faces." in text
    )
    assert (
        "The 2 faces of the data's own test split that are exact copies of another face "
        "labelled otherwise were kept, so the test split is scored as released" in text
    )
    assert "The data's own training split was kept, less the faces left out" in text


def test_pairs_crossing_the_splits_count_only_faces_still_in_them(tmp_path: Path) -> None:
    section = methods(_left_out_before_the_split(tmp_path))
    text = _spaced(section.text)
    assert "1 pair of duplicate or near-duplicate images crosses the splits" in text
    assert "(1 train-test)" in text and "3 pairs" not in text
    assert any(
        check.startswith("1 pair of duplicate or near-duplicate images crosses the data's")
        and check.endswith("remove it and run again.")
        for check in section.checks
    )


def test_a_budget_that_ended_inside_the_only_epoch_is_said(tmp_path: Path) -> None:
    card = _card(epochs_run=1, training_time_s=684.0)
    card["parameters"]["time_budget_minutes"] = 4.0
    text = _spaced(methods(_run(tmp_path, card=card)).text)
    assert (
        "It ran 1 epoch (the 4-minute budget ended inside it, and it ran to its end) in 11.4 "
        "minutes" in text
    )


def test_what_the_augmentation_modes_did_is_what_the_text_says(tmp_path: Path) -> None:
    run = _run(tmp_path)
    config = AugmentConfig.from_dict({"dropout_p": 0.5})
    AugmentSettings(mode="offline", config=config, balance="none").write(run.augment_settings)
    assert "The training faces were not augmented. The classes were not balanced." in (
        methods(run).text
    )  # offline, but nothing to balance: no copy was written
    AugmentSettings(mode="none", config=config, balance="upsample", target_per_class=9).write(
        run.augment_settings
    )
    assert (
        "The classes under 9 faces were upsampled by repeated faces to 9 each; larger classes "
        "kept their own." in methods(run).text
    )  # no training table to count: the target, and what happens above it


def test_a_pretrained_model_is_described_phase_by_phase(tmp_path: Path) -> None:
    params = {
        **_card()["parameters"],
        "weights": "imagenet",
        "transfer": "top_n",
        "trainable_top_n": 20,
        "lr_schedule": "plateau",
        "reduce_lr_factor": 0.2,
    }
    phases = [
        {
            "name": "warmup",
            "transfer": "frozen",
            "learning_rate": 0.001,
            "first_epoch": 0,
            "end_epoch": 2,
        },
        {
            "name": "finetune",
            "transfer": "top_n",
            "learning_rate": 0.0001,
            "first_epoch": 2,
            "end_epoch": 10,
        },
    ]
    card = _card(
        model="vgg16",
        pretrained_backbone=True,
        parameters=params,
        phases=phases,
        resumed=True,
        weight_average={"kept": True, "value": None},
    )
    run = _run(tmp_path, card=card)
    run.card_path("custom_cnn").unlink()
    write_json(run.card_path("vgg16"), card)
    section = methods(run)
    text = section.text
    assert "The backbone started from ImageNet weights (Deng et al., 2009)." in text
    assert "randomly initialised" not in text
    assert (
        "in phases: epochs 1–2, the backbone frozen, at 0.001; epochs 3–10, the last 20 "
        "backbone layers trainable, at 0.0001" in text
    )
    assert "the rate multiplied by 0.2 when the validation loss stalled" in text
    assert "the weight average replaced it, there being no validation score to compare" in text
    assert any("resumed" in check for check in section.checks)
    params["weights"] = "/home/someone/weights/vgg16_faces.h5"
    write_json(run.card_path("vgg16"), {**card, "parameters": params})
    assert "started from the weights in `vgg16_faces.h5`." in methods(run).text
    params["weights"] = "/runs/ferplus/models/vgg16.keras"
    loaded = (
        "vgg16: 20 of 22 layers from vgg16.keras; left as initialised: expression (256x8 in "
        "the file, 256x7 here), arousal (not in the file)"
    )
    write_json(run.card_path("vgg16"), {**card, "parameters": params, "weights_loaded": loaded})
    assert (
        "started from the weights in `vgg16.keras`; expression and arousal started from their "
        "initial weights."
    ) in " ".join(methods(run).text.split())


def test_a_multi_task_model_states_its_loss_weights_defaults_included(tmp_path: Path) -> None:
    arch = {
        **_card()["architecture"],
        "heads": ["expression", "landmarks"],
        "preprocessing": "inside the model: pixels / 255 -> [0, 1]",
    }
    section = methods(_run(tmp_path, card=_card(architecture=arch)))
    assert "loss weights expression 1, landmarks 10" in section.text
    latex = section.latex()
    assert r"pixels / 255 $\rightarrow$ [0, 1]" in latex
    body = "\n".join(line for line in latex.splitlines() if not line.startswith("%"))
    assert ">" not in body and "<" not in body


def test_the_intervals_say_when_they_draw_a_persons_faces_together(tmp_path: Path) -> None:
    plain = methods(_run(tmp_path / "a")).text
    assert "percentile bootstrap over the test images, 1,000 resamples" in plain
    grouped = {"level": 0.95, "n_boot": 1000, "seed": 0, "method": "percentile bootstrap over "
               "groups of images, each group drawn whole", "groups": 12}  # fmt: skip
    text = methods(_run(tmp_path / "b", scores=_metrics(ci=grouped))).text
    assert (
        "percentile bootstrap over the 12 people of the test images, each person's faces drawn "
        "together, 1,000 resamples"
    ) in " ".join(text.split())


def test_metrics_of_an_earlier_training_are_left_out_and_the_author_told(tmp_path: Path) -> None:
    old = _metrics(trained={"model_sha256": "0" * 64, "card_finished_at": "2026-01-01T10:00:00"})
    run = _run(tmp_path, scores=old)
    run.model_path("custom_cnn").write_bytes(b"trained again")  # notebook 04 rerun, 05 not
    section = methods(run)
    assert "accuracy 0.687" not in section.text
    assert (
        "custom_cnn: figures left out (its metrics describe an earlier training)." in section.text
    )
    assert (
        "custom_cnn: metrics/custom_cnn.json describes an earlier training of custom_cnn: run "
        "notebook 05 again (model = 'custom_cnn'); its figures are left out." in section.checks
    )


def test_a_run_made_by_hand_on_the_demo_set_names_it_from_notebook_01s_record(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path, source="affectnet", manifest=False)
    write_json(
        run.settings,
        {"profile": "smoke", "data": {"path": "/x/demo.zip", "sha256": "98fe9297aa", "demo": True}},
    )
    section = methods(run)
    assert "synthetic demo set: 52 generated images read from `demo.zip`" in section.text
    checks = "\n".join(section.checks)
    assert "name the data set" not in checks
    assert "No manifest.json: the command was not recorded" in checks


def _train_table(run: RunFolder, counts: dict[int, int], originals: int) -> None:
    """A training table as notebook 03 writes it: `originals` faces per class, copies after."""
    rows = [
        {"expression": c, "augmented": i >= originals} for c, n in counts.items() for i in range(n)
    ]
    pd.DataFrame(rows).to_parquet(run.train_table)


def test_the_balance_is_stated_from_the_training_tables_own_counts(tmp_path: Path) -> None:
    run = _run(tmp_path)
    config = AugmentConfig.from_dict({"dropout_p": 0.5})
    AugmentSettings(mode="both", config=config, balance="upsample", target_per_class=6).write(
        run.augment_settings
    )
    _train_table(run, {0: 9, 1: 12, 2: 6, 3: 6}, originals=4)  # Neutral and Happy above 6
    text = methods(run).text
    assert (
        "The smaller classes were upsampled by augmented copies to 6 faces each; "
        "Neutral (9) and Happy (12) kept their own." in text
    )
    assert "6 faces per class" not in text
    _train_table(run, {0: 6, 1: 6, 2: 6}, originals=4)  # every class at the target
    assert "The classes were balanced by augmented copies, to 6 faces per class." in (
        methods(run).text
    )


def test_each_models_augmentation_per_batch_is_stated_from_its_card(tmp_path: Path) -> None:
    run = _run(tmp_path)
    _train_table(run, {0: 6, 1: 6}, originals=4)
    plain = {**_card()["parameters"], "online_augment": False}
    write_json(run.card_path("vgg16"), _card(model="vgg16", parameters=plain))
    write_json(run.card_path("custom_cnn"), _card(data={"online_augmentation": True}))
    text = methods(run).text
    assert (
        "Copies for balancing were written once and the training batches of custom_cnn were "
        "augmented afresh, those of vgg16 not (they trained on the faces and the copies as "
        "written): horizontal flip" in text
    )
    assert "each training batch was augmented afresh" not in text
    write_json(run.card_path("custom_cnn"), _card(data={"online_augmentation": False}))
    text = methods(run).text
    assert "Augmented copies of training faces were written once, before training: horiz" in text
    assert "No model's training batches were augmented afresh (`online_augment = False`)." in text


def test_the_results_say_where_the_other_metrics_computed_are_given(tmp_path: Path) -> None:
    """Evaluation names more metrics than the headline figures: Results says where each is."""
    text = methods(_run(tmp_path)).text
    results_paragraph = next(p for p in text.split("\n\n") if p.startswith("**Results"))
    assert results_paragraph.endswith(
        "The other metrics named above are in the report's table of secondary metrics."
    )
    per_class = {"Neutral": {"precision": 0.7, "recall": 0.6, "f1": 0.65, "support": 2}}
    expression = {**_metrics()["expression"], "per_class": per_class}
    text = methods(_run(tmp_path / "b", scores=_metrics(expression=expression))).text
    assert (
        "secondary metrics, each class's F1 in its per-class figure, and each class's "
        "precision, recall and F1 in `metrics/<model>.json`." in text
    )


def test_a_run_made_from_uncommitted_code_says_so(tmp_path: Path) -> None:
    run = _run(tmp_path)
    manifest = read_json(run.manifest)
    write_json(run.manifest, {**manifest, "git_dirty": True})
    section = methods(run)
    assert "The pipeline at commit 8a4dab5558b2 with uncommitted changes, run as" in section.text
    assert any("uncommitted changes" in check for check in section.checks)
    by_hand = _run(tmp_path / "hand", manifest=False)
    write_json(by_hand.settings, {"profile": "smoke", "git_commit": "8a4dab55", "git_dirty": True})
    assert "The pipeline at commit 8a4dab55 with uncommitted changes." in methods(by_hand).text


def _ferplus_run(tmp_path: Path, source: str, by_hand: bool = False) -> RunFolder:
    """A run of the ferplus-cpu profile on faces its `source` reader read, the profile recorded
    as ./run_all.sh records it (the manifest) or, by hand, as notebook 01 does (settings.json)."""
    run = _run(tmp_path, source=source, manifest=not by_hand)
    if by_hand:
        profiles.record_profile(run, "ferplus-cpu")
    else:
        manifest = read_json(run.manifest)
        manifest["profile"] = profiles.get_profile("ferplus-cpu").to_dict()
        write_json(run.manifest, manifest)
    return run


@pytest.mark.parametrize("by_hand", [False, True])
def test_a_profile_that_names_its_data_set_names_and_cites_it(
    tmp_path: Path, by_hand: bool
) -> None:
    section = methods(_ferplus_run(tmp_path, "affectnet", by_hand))
    assert "The data are 52 faces of FER+ (Barsoum et al., 2016)" in section.text
    assert "barsoum2016training" in section.cited
    assert not any("name the data set" in check for check in section.checks)


def test_a_profiles_data_set_is_not_claimed_for_faces_another_reader_read(
    tmp_path: Path,
) -> None:
    section = methods(_ferplus_run(tmp_path, "folders"))
    assert "FER+" not in section.text and "barsoum2016training" not in section.cited
    assert any("The `folders` reader reads a layout" in check for check in section.checks)


def test_a_test_split_the_data_came_with_is_named_as_the_datas_own(tmp_path: Path) -> None:
    """Without a name for it (a generic layout) the split is still the data's own; where
    notebook 03 left faces out of it, the data's own count is said as such."""
    run = _run(tmp_path, source="folders")
    splits = pd.read_parquet(run.splits)
    save_records(splits[splits["id"] != "test/0"].reset_index(drop=True), run.splits)
    text = methods(run).text
    assert "The test faces are the data's own test split (12 in the data)." in text
    assert "and 11 for the test" in text and "PublicTest" not in text


def test_an_expression_head_wider_than_the_datas_classes_says_which_are_never_a_target(
    tmp_path: Path,
) -> None:
    """FER-2013's 7 classes train the model's 8-unit head: Contempt is in it, never a target."""
    text = methods(_run(tmp_path)).text
    assert (
        "expression (8-way softmax, cross-entropy; the head keeps AffectNet's 8 classes, the "
        "data has 7: Contempt is never a target)" in text
    )


def test_an_expression_head_as_wide_as_the_datas_classes_is_an_n_way_softmax(
    tmp_path: Path,
) -> None:
    run = _run(tmp_path, source="affectnet")
    for table in (run.records, run.splits):
        records = pd.read_parquet(table)
        records.loc[records.index[-1], "expression"] = 7  # one Contempt face, in the test split
        save_records(records, table)
    assert "expression (8-way softmax, cross-entropy)" in methods(run).text


def test_an_architecture_without_a_reference_is_listed_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = registry.ModelSpec(
        "densenet121",
        "keras.applications:DenseNet121",
        "keras.applications.densenet:preprocess_input",
        "keras.applications.densenet.preprocess_input",
        min_size=32,
        default_image_size=224,
        compared=False,
    )
    monkeypatch.setitem(registry._REGISTRY, "densenet121", spec)
    run = _run(tmp_path)
    write_json(run.card_path("densenet121"), _card(model="densenet121", params=7_337_426))
    write_json(run.metrics_path("densenet121"), _metrics(model="densenet121"))
    section = methods(run)
    assert "DenseNet121 as `keras.applications` builds it" in section.text
    (check,) = [c for c in section.checks if "no reference to cite" in c]
    assert "DenseNet121" in check
    assert "`reference=`" in check and "ModelSpec" in check and "references.py" in check
    # the project's own network is described in full, with nothing to cite: no such check
    assert not [c for c in section.checks if c.startswith("custom_cnn")]
    assert "% CHECK: densenet121" in section.latex()


def test_a_test_split_carved_out_of_the_training_faces_is_said_and_flagged(tmp_path: Path) -> None:
    """A FER-2013 CSV with Training and PublicTest rows but no PrivateTest: notebook 03 takes
    the test faces from the training split; the section says so and asks the author to."""
    run = _run(tmp_path, source="fer2013_csv")
    records = load_records(run.records)
    records["split"] = records["split"].replace({"test": "val"})  # no test split of its own
    save_records(records, run.records)
    splits = load_records(run.splits)
    splits.loc[splits.index[4:8], "split"] = "test"
    save_records(splits, run.splits)
    section = methods(run)
    assert "no test split: the test faces were carved out of its training split." in section.text
    assert any("carved out of its training split" in check for check in section.checks)


def test_a_model_trained_by_hand_on_a_run_is_named_beside_the_command(tmp_path: Path) -> None:
    """Notebooks 04 and 05 run by hand add a model the recorded command does not make: the
    section says which, and asks the author to state how it was trained."""
    run = _run(tmp_path)
    write_json(run.card_path("densenet121"), {**_card(), "model": "densenet121"})
    write_json(run.metrics_path("densenet121"), {**_metrics(), "model": "densenet121"})
    section = methods(run)
    assert (
        "run as `./run_all.sh --profile fer2013-cpu --data fer2013.zip`; densenet121 was trained "
        "and scored outside that command (notebooks 04 and 05 run by hand)." in section.text
    )
    assert any(c.startswith("densenet121 was trained outside the recorded") for c in section.checks)
    assert "outside" not in methods(_run(tmp_path / "alone")).text  # custom_cnn: the command's


def test_a_fer_test_folder_with_both_halves_is_named_so(tmp_path: Path) -> None:
    """The FER-2013 image release's test/ folder holds PublicTest faces, or in some copies
    PrivateTest faces as well: the methods name the halves the faces' ids show."""
    run = _run(tmp_path)
    records = load_records(run.records)
    test = records["split"] == "test"
    halves = ["PublicTest" if i % 2 else "PrivateTest" for i in range(int(test.sum()))]
    records.loc[test, "id"] = [f"test/{h}_{i}" for i, h in enumerate(halves)]
    save_records(records, run.records)
    splits = load_records(run.splits)
    splits.loc[splits["split"] == "test", "id"] = records.loc[test, "id"].to_numpy()
    save_records(splits, run.splits)
    text = methods(run).text
    assert "the data's own test split, FER-2013's PublicTest and PrivateTest faces (12)" in text
