"""Notebooks run again, by hand, in a kernel: notebook 03 never re-splits under trained models,
a model trained on another split is neither scored nor ranked, the run folder a notebook prints
pastes back as run_dir from either kernel folder, a misspelt model name lists the run's models,
and notebook 06 names a model trained but not evaluated in its first line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from helpers.core import paths, trained
from helpers.core.errors import ConfigError, DataError
from helpers.core.jsonio import write_json
from helpers.core.run_folder import RunFolder
from helpers.data import splits
from helpers.evaluation import comparison, freshness, scoring


def _split_table(seed: int, n: int = 60) -> pd.DataFrame:
    """A records table split by seed, as notebook 03 makes one."""
    from test_splits import make_table

    return splits.assign_splits(make_table(n), val_share=0.2, test_share=0.2, seed=seed)


def _run(tmp_path: Path) -> RunFolder:
    """A run folder holding notebook 01's records, which a split is written into too."""
    from helpers.core.records import save_records
    from test_splits import make_table

    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    save_records(make_table(60), run.records)
    return run


def _model(run: RunFolder, name: str, split: str | None = None) -> None:
    """A 'trained' model file and its card, naming the split it trained on (None: a card from
    before cards named it)."""
    run.model_path(name).parent.mkdir(parents=True, exist_ok=True)
    run.model_path(name).write_bytes(name.encode())
    data = {} if split is None else {trained.SPLIT_KEY: split}
    write_json(run.card_path(name), {"model": name, "finished_at": "2026-01-01", "data": data})


def _scored(run: RunFolder, name: str) -> None:
    """Metrics as notebook 05 writes them for the model now in the folder."""
    scores = {"model": name, "n": 12, "trained": freshness.training_of(run, name)}
    write_json(run.metrics_path(name), scores)


def _trained_run(tmp_path: Path) -> tuple[RunFolder, pd.DataFrame, Any]:
    """A run as notebook 03 leaves it (split, training table, online augmentation) with a
    custom_cnn 'trained' on that split; its card's data block is the test's to write."""
    from helpers.core.records import save_records
    from helpers.data.augment import AugmentSettings

    run = _run(tmp_path)
    splits.save_split(_split_table(seed=0), run)
    table = _split_table(seed=0)
    train = table[table["split"] == "train"].reset_index(drop=True)
    save_records(train, run.train_table)
    settings = AugmentSettings(mode="online", seed=0)
    settings.write(run.augment_settings)
    _model(run, "custom_cnn", trained.split_sha256(run))
    return run, train, settings


def test_notebook_03_refuses_a_new_split_under_trained_models(tmp_path: Path) -> None:
    run = _run(tmp_path)
    first = _split_table(seed=0)
    splits.save_split(first, run)  # no model yet: written
    fingerprint = trained.split_sha256(run)
    for name in ("custom_cnn", "mobilenetv2"):
        _model(run, name, fingerprint)
        _scored(run, name)
    with pytest.raises(ConfigError) as caught:
        splits.save_split(_split_table(seed=1), run)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("splits.parquet: 2 models (custom_cnn, mobilenetv2) trained on")
    assert "start a new run with notebook 01" in message and "discard_models = True" in message
    assert trained.split_sha256(run) == fingerprint  # the split the models rest on is kept

    run.train_table.write_bytes(b"the training table of this split")
    splits.save_split(_split_table(seed=0).sample(frac=1, random_state=3), run)  # the same one
    assert run.train_table.is_file()
    assert trained.split_sha256(run) == fingerprint
    assert run.trained_models() == ["custom_cnn", "mobilenetv2"]


def test_discard_models_deletes_the_models_and_their_metrics_then_splits(
    tmp_path: Path, capsys
) -> None:
    run = _run(tmp_path)
    splits.save_split(_split_table(seed=0), run)
    _model(run, "custom_cnn", trained.split_sha256(run))
    _scored(run, "custom_cnn")
    (run.root / "history").mkdir()
    run.history_path("custom_cnn").write_text("epoch\n0\n")
    run.train_table.write_bytes(b"the training table of the split before")
    splits.save_split(_split_table(seed=1), run, discard_models=True)
    with pytest.raises(DataError, match=r"train\.parquet: not found .*run notebook 03 first"):
        run.need(run.train_table)  # notebook 04 before 03 has written the new split's own
    assert "deleted the models trained on the earlier split (custom_cnn)" in capsys.readouterr().out
    assert run.trained_models() == []
    assert not run.metrics_files() and not run.history_path("custom_cnn").exists()
    new = _split_table(seed=1)
    assert trained.split_sha256(run) == trained.table_split_sha256(new["id"], new["split"])


def test_a_model_trained_on_another_split_is_not_scored_nor_ranked(tmp_path: Path) -> None:
    run = _run(tmp_path)
    splits.save_split(_split_table(seed=0), run)
    _model(run, "custom_cnn", trained.split_sha256(run))
    _model(run, "mobilenetv2", "0" * 64)  # trained before notebook 03 ran again
    _model(run, "vgg16")  # a card from before cards named the split: not judged
    for name in ("custom_cnn", "mobilenetv2", "vgg16"):
        _scored(run, name)
    assert freshness.split_note(run, "custom_cnn") is None
    assert freshness.split_note(run, "vgg16") is None
    expected = (
        "mobilenetv2 was trained on another split than splits.parquet now holds (notebook 03 ran "
        "again since): train it again with notebook 04 (model = 'mobilenetv2'), then run "
        "notebook 05"
    )
    with pytest.raises(DataError) as caught:  # notebook 05
        scoring.trained_model(run, "mobilenetv2")
    assert str(caught.value).endswith(expected)
    assert freshness.stale_notes(run) == {"mobilenetv2": expected}  # notebook 06
    table = comparison.comparison_table(run).set_index("model")
    assert table.loc["mobilenetv2", "stale"] == expected
    assert table.loc["custom_cnn", "stale"] == "" and table.loc["vgg16", "stale"] == ""


@pytest.mark.parametrize("kernel", ["notebooks", "."])
@pytest.mark.parametrize("given", ["reports/20261207-194612", "../reports/20261207-194612"])
def test_the_run_folder_a_notebook_prints_pastes_back_from_either_kernel_folder(
    tmp_path: Path, monkeypatch, capsys, kernel: str, given: str
) -> None:
    root = tmp_path / "clone"
    run = root / "reports" / "20261207-194612"
    run.mkdir(parents=True)
    (root / "notebooks").mkdir()
    monkeypatch.setattr(paths, "REPO_ROOT", root)
    monkeypatch.setattr(paths, "REPORTS_DIR", root / "reports")
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", root / "notebooks")
    monkeypatch.chdir(root / kernel)
    assert RunFolder(run).continued.startswith("run folder reports/20261207-194612 ")
    found = RunFolder.resolve(given)
    assert found.root == run.resolve()
    said = capsys.readouterr().out
    here = given.startswith("..") if kernel == "notebooks" else given.startswith("reports")
    if here:  # found from the kernel's folder: nothing to say
        assert said == ""
    else:
        assert said.startswith(f"run_dir '{given}': not in the working folder, read from ")
    with pytest.raises(ConfigError, match="looked for from the working folder, the repository"):
        RunFolder.resolve("reports/20261207-194613")
    with pytest.raises(ConfigError, match="does not exist"):
        RunFolder.resolve(os.fspath(run) + "3")


def test_a_misspelt_model_name_lists_the_models_the_run_has(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "20261207-194612")
    for name in ("custom_cnn", "mobilenetv2"):
        _model(run, name)
    (run.checkpoints_dir("vggnet")).mkdir(parents=True)
    (run.checkpoints_dir("vggnet") / "progress.json").write_text("{}")  # training now
    with pytest.raises(DataError) as caught:  # notebook 05
        scoring.trained_model(run, "custom_cn")
    message = str(caught.value)
    assert "\n" not in message
    assert message.split(": ", 1)[1].startswith(
        "run 20261207-194612 has no model 'custom_cn' (it has custom_cnn, mobilenetv2, vggnet; "
        "notebook 04 trains custom_cnn, "
    )
    assert message.endswith("); did you mean custom_cnn?")
    with pytest.raises(DataError, match=r"no model 'mobilenet' \(it has custom_cnn, mobilenet"):
        comparison.chosen_model(run, "mobilenet")  # notebook 07
    with pytest.raises(DataError, match=r"has no model 'vgg16' \(it has custom_cnn"):
        comparison.chosen_model(run, "vgg16")  # 07 predicts with a trained one only
    assert comparison.chosen_model(run, "mobilenetv2") == "mobilenetv2"
    with pytest.raises(DataError, match="model file not found: train it with notebook 04"):
        scoring.trained_model(run, "vgg16")  # a name notebook 04 trains: the step to take


def test_notebook_06_names_a_model_trained_but_not_evaluated_in_its_first_line(
    tmp_path: Path,
) -> None:
    run = RunFolder(tmp_path / "run")
    for name in ("custom_cnn", "mobilenetv2", "vggnet"):
        _model(run, name)
    for name in ("custom_cnn", "mobilenetv2"):
        _scored(run, name)
    table = comparison.comparison_table(run)
    assert comparison.evaluated_line(run, table, "smoke") == (
        "run run: profile smoke, 2 models evaluated; vggnet was trained but not evaluated, so "
        "not in the tables: run notebook 05 with model = 'vggnet'"
    )
    _scored(run, "vggnet")
    table = comparison.comparison_table(run)
    assert comparison.evaluated_line(run, table, "smoke") == (
        "run run: profile smoke, 3 models evaluated"
    )


def test_the_models_notebook_06_expects_scores_of_are_the_finished_ones_alone(
    tmp_path: Path,
) -> None:
    run = RunFolder(tmp_path / "run")
    _model(run, "custom_cnn")
    (run.root / "models" / ".mobilenetv2.keras.partial").write_text("x")  # half written
    (run.checkpoints_dir("vggnet")).mkdir(parents=True)
    (run.checkpoints_dir("vggnet") / "progress.json").write_text("{}")  # its first training
    assert run.trained_models() == ["custom_cnn", "vggnet"]  # what a model parameter may name
    assert run.trained_models(finished_only=True) == ["custom_cnn"]  # what 05 can evaluate
    table = comparison.comparison_table(run)
    assert comparison.evaluated_line(run, table, "smoke") == (
        "run run: profile smoke, 0 models evaluated: run notebook 05 first (model = 'custom_cnn')"
    )


def test_a_model_trained_before_notebook_03_changed_its_augmentation_is_named(
    tmp_path: Path, capsys
) -> None:
    """Notebook 03 run again on the same split with other augmentation rewrites train.parquet
    and augment.json: the model's test figures stand, but 05 and 06 say it trained on others."""
    from helpers.core.records import save_records
    from helpers.data.augment import AugmentSettings
    from helpers.train.card import augment_sha256, data_hash

    run, train, settings = _trained_run(tmp_path)
    card = {
        "model": "custom_cnn",
        "finished_at": "2026-01-01",
        "data": {
            trained.SPLIT_KEY: trained.split_sha256(run),
            "train_hash": data_hash(train),
            "augment_sha256": augment_sha256(settings),
        },
    }
    write_json(run.card_path("custom_cnn"), card)
    _scored(run, "custom_cnn")
    assert freshness.training_note(run, "custom_cnn") is None
    assert freshness.stale_notes(run) == {}

    AugmentSettings(mode="online", balance="oversample", seed=0).write(run.augment_settings)
    note = freshness.training_note(run, "custom_cnn")
    assert note is not None and note.startswith(
        "custom_cnn was trained on other training faces or augmentation than train.parquet and "
        "augment.json now hold (notebook 03 ran again since)"
    )
    assert freshness.split_note(run, "custom_cnn") is None  # same split: still scored
    assert freshness.warn_stale(run) == [f"warning: {note}"]  # notebook 06
    assert note in capsys.readouterr().out
    table = comparison.comparison_table(run).set_index("model")
    assert table.loc["custom_cnn", "stale"] == ""  # its figures are its own: ranked

    settings.write(run.augment_settings)  # the same augmentation, fewer training faces
    assert freshness.training_note(run, "custom_cnn") is None
    save_records(train.iloc[1:], run.train_table)
    assert freshness.training_note(run, "custom_cnn") is not None


def test_training_data_that_cannot_be_compared_is_no_sentence_and_read_once(
    tmp_path: Path, monkeypatch
) -> None:
    """A card trained without notebook 03's settings, a malformed card or augment.json: cannot
    tell, so no sentence; train.parquet is hashed once however many times it is asked."""
    from helpers.train import card as card_module

    run, train, settings = _trained_run(tmp_path)
    data = {
        trained.SPLIT_KEY: trained.split_sha256(run),
        "train_hash": card_module.data_hash(train),
        "augment_sha256": None,  # trained with augment_settings=None
    }
    write_json(run.card_path("custom_cnn"), {"model": "custom_cnn", "data": data})
    assert card_module.trained_on_training_data(run, "custom_cnn") is None
    assert freshness.training_note(run, "custom_cnn") is None

    data["augment_sha256"] = card_module.augment_sha256(settings)
    write_json(run.card_path("custom_cnn"), {"model": "custom_cnn", "data": data})
    card_module._table_hash.cache_clear()
    reads = []
    real = card_module.load_records
    monkeypatch.setattr(card_module, "load_records", lambda path: reads.append(path) or real(path))
    assert [card_module.trained_on_training_data(run, "custom_cnn") for _ in range(3)] == [True] * 3
    assert len(reads) == 1

    run.augment_settings.write_text("{not json")
    assert card_module.trained_on_training_data(run, "custom_cnn") is None
    assert freshness.stale_notes(run) == {}
    settings.write(run.augment_settings)
    run.card_path("custom_cnn").write_text("[1, 2")
    assert freshness.training_note(run, "custom_cnn") is None


def test_a_damaged_model_card_leaves_the_split_untold_not_the_notes_broken(tmp_path: Path) -> None:
    run = _run(tmp_path)
    splits.save_split(_split_table(seed=0), run)
    _model(run, "custom_cnn", trained.split_sha256(run))
    run.card_path("custom_cnn").write_text("{not json")
    assert trained.trained_on_split(run, "custom_cnn") is None
    assert freshness.split_note(run, "custom_cnn") is None
    run.card_path("custom_cnn").write_text("[1, 2]")
    assert trained.trained_on_split(run, "custom_cnn") is None
