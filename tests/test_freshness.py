"""Which training of a model its metrics describe: notebook 05 records it, notebook 06 and the
methods section flag metrics of an earlier training, notebook 04 says when it replaces a
trained model, and notebook 05 before 04 names the next step."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers.core import paths
from helpers.core.errors import DataError
from helpers.core.jsonio import write_json
from helpers.core.run_folder import RunFolder
from helpers.evaluation import comparison, freshness, scoring
from helpers.evaluation.leaderboard import append_leaderboard, appended_line, merge_runs
from helpers.reporting import results
from helpers.reporting.repeats import scored_runs
from helpers.train.resume import replacing_line


def _trained(
    folder: Path, weights: bytes = b"first", finished: str = "2026-01-01T10:00:00"
) -> RunFolder:
    """A run folder holding a 'trained' model file and its card."""
    run = RunFolder(folder)
    run.model_path("custom_cnn").parent.mkdir(parents=True, exist_ok=True)
    run.model_path("custom_cnn").write_bytes(weights)
    write_json(run.card_path("custom_cnn"), {"model": "custom_cnn", "finished_at": finished})
    return run


def _scored(run: RunFolder) -> dict:
    """Metrics as notebook 05 writes them for the model now in the folder."""
    scores = {"model": "custom_cnn", "n": 10, "trained": freshness.training_of(run, "custom_cnn")}
    write_json(run.metrics_path("custom_cnn"), scores)
    return scores


def test_metrics_of_the_model_in_the_folder_are_current_even_in_a_copied_folder(
    tmp_path: Path,
) -> None:
    run = _trained(tmp_path / "run")
    scores = _scored(run)
    assert freshness.stale_note(run, "custom_cnn", scores) is None
    copy = RunFolder(shutil.copytree(run.root, tmp_path / "elsewhere"))
    assert freshness.stale_notes(copy) == {}


def test_a_model_trained_again_after_its_metrics_is_flagged(tmp_path: Path, capsys) -> None:
    run = _trained(tmp_path / "run")
    _scored(run)
    _trained(run.root, weights=b"second", finished="2026-01-01T11:00:00")
    expected = (
        "metrics/custom_cnn.json describes an earlier training of custom_cnn: run notebook 05 "
        "again (model = 'custom_cnn')"
    )
    assert freshness.stale_notes(run) == {"custom_cnn": expected}
    assert freshness.warn_stale(run) == [f"warning: {expected}"]
    assert expected in capsys.readouterr().out


def test_without_the_model_file_the_card_decides_and_old_metrics_are_not_judged(
    tmp_path: Path,
) -> None:
    run = _trained(tmp_path / "run")
    scores = _scored(run)
    run.model_path("custom_cnn").unlink()  # metrics and cards copied without the weights
    assert freshness.stale_note(run, "custom_cnn", scores) is None
    write_json(run.card_path("custom_cnn"), {"finished_at": "2026-02-02T00:00:00"})
    assert freshness.stale_note(run, "custom_cnn", scores) is not None
    assert freshness.stale_note(run, "custom_cnn", {"model": "custom_cnn"}) is None


def test_evaluating_a_model_not_trained_yet_names_the_next_step(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        scoring.trained_model(tmp_path / "run", "custom_cnn")
    assert str(caught.value) == (
        f"{tmp_path / 'run' / 'models' / 'custom_cnn.keras'}: model file not found: train it "
        "with notebook 04 (model = 'custom_cnn') first"
    )


def test_training_again_says_it_replaces_the_trained_model(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    assert replacing_line(run, "custom_cnn") is None  # nothing trained yet
    _trained(run.root)
    assert replacing_line(run, "custom_cnn") == (
        "custom_cnn: replacing the trained models/custom_cnn.keras, finished 2026-01-01T10:00:00"
    )
    _scored(run)
    assert replacing_line(run, "custom_cnn").endswith(
        "; metrics/custom_cnn.json describes the old one until notebook 05 runs again"
    )


def test_one_reader_of_the_card_and_one_file_digest_serve_training_and_scoring(
    tmp_path: Path,
) -> None:
    run = _trained(tmp_path / "run")
    assert run.card_finished_at("custom_cnn") == "2026-01-01T10:00:00"
    run.card_path("custom_cnn").write_text("{not json")  # a damaged card says nothing
    assert run.card_finished_at("custom_cnn") is None
    assert replacing_line(run, "custom_cnn") == (
        "custom_cnn: replacing the trained models/custom_cnn.keras"
    )
    assert RunFolder(tmp_path / "none").card_finished_at("custom_cnn") is None
    model = run.model_path("custom_cnn")
    assert freshness.file_sha256(model) == paths.file_sha256(model) == paths.data_fingerprint(model)
    assert paths.file_sha256(model) == hashlib.sha256(b"first").hexdigest()


def test_external_test_metrics_of_an_earlier_training_are_flagged_too(tmp_path: Path) -> None:
    run = _trained(tmp_path / "run")
    scores = _scored(run)
    write_json(run.metrics_path("custom_cnn", "jaffe"), {**scores, "dataset": "jaffe"})
    assert freshness.stale_notes(run) == {}
    _trained(run.root, weights=b"second", finished="2026-01-01T11:00:00")
    _scored(run)  # notebook 05 scored the new training on the test split only
    assert freshness.stale_notes(run) == {
        "custom_cnn": "metrics/custom_cnn.jaffe.json describes an earlier training of "
        "custom_cnn: run notebook 05 again (model = 'custom_cnn')"
    }
    write_json(run.metrics_path("custom_cnn"), scores)  # and the test split's is old as well
    assert freshness.stale_notes(run)["custom_cnn"].startswith(
        "metrics/custom_cnn.json and metrics/custom_cnn.jaffe.json describe an earlier training"
    )
    assert freshness.stale_note(run, "custom_cnn", scores, dataset="jaffe").startswith(
        "metrics/custom_cnn.jaffe.json describes"
    )


def _two_scored(folder: Path) -> RunFolder:
    """A run with models a (macro-F1 0.9) and b (0.5), each scored after its training."""
    run = RunFolder(folder)
    run.model_path("a").parent.mkdir(parents=True, exist_ok=True)
    for model, f1 in (("a", 0.9), ("b", 0.5)):
        run.model_path(model).write_bytes(model.encode())
        write_json(run.card_path(model), {"model": model, "finished_at": "2026-01-01T10:00:00"})
        write_json(
            run.metrics_path(model),
            {
                "model": model,
                "n": 10,
                "expression": {"accuracy": f1, "f1_macro": f1, "f1_macro_ci": [f1 - 0.1, f1]},
                "trained": freshness.training_of(run, model),
            },
        )
    return run


def test_a_model_trained_again_is_shown_with_the_reason_and_left_out_of_every_ranking(
    tmp_path: Path, capsys
) -> None:
    run = _two_scored(tmp_path / "run")
    assert comparison.best_models(comparison.comparison_table(run))["expression"]["model"] == "a"
    board = tmp_path / "board.csv"
    append_leaderboard(run, comparison.comparison_table(run), "smoke", "hash", path=board)
    assert list(pd.read_csv(board)["model"]) == ["a", "b"]
    run.model_path("a").write_bytes(b"a, trained again")  # notebook 04 again, not 05
    table = comparison.comparison_table(run)
    reason = (
        "metrics/a.json describes an earlier training of a: run notebook 05 again (model = 'a')"
    )
    assert dict(zip(table["model"], table["stale"], strict=True)) == {"a": reason, "b": ""}
    assert comparison.best_models(table)["expression"]["model"] == "b"
    assert comparison.best_per_task_line(table) == (
        "best per task: expression: b (not ranked, its metrics describe an earlier training: a)"
    )
    assert f"a is not ranked: {reason}." in comparison.summary_text(table)
    assert "Expression: b is best" in comparison.summary_text(table)
    assert comparison.model_to_use(table) == "b" and comparison.chosen_model(run) == "b"
    assert list(results.results_table(run)["model"]) == ["b"]
    assert list(scoring.record_results(run, tmp_path / "rec.json")["models"]) == ["b"]
    with pytest.raises(DataError, match=r"metrics/a\.json describes an earlier training of a"):
        scored_runs((run.root,), "seed", (0,))  # a seeds' or folds' summary of old figures
    added = append_leaderboard(run, table, "smoke", "hash", path=board)
    assert list(pd.read_csv(board)["model"]) == ["b"]  # a's row of its earlier training gone
    assert appended_line(added, board) == (
        f"appended 1 row to {paths.shown(board)}; left out a (its metrics describe an earlier "
        "training: run notebook 05 again)"
    )
    merged = merge_runs([run.root], path=tmp_path / "merged.csv")
    assert list(merged["model"]) == ["b"] and merged.attrs["left_out"] == [
        f"a of {run.root} left out: its metrics describe an earlier training "
        "(run notebook 05 again)"
    ]
    capsys.readouterr()
    run.model_path("b").write_bytes(b"b, trained again")  # every model's figures are old
    assert comparison.chosen_model(run) == "a"
    assert capsys.readouterr().out == (
        "every model's metrics describe an earlier training (run notebook 05 again): using a, "
        "chosen by those figures\n"
    )
    assert comparison.best_per_task_line(comparison.comparison_table(run)) == (
        "best per task: none (not ranked, its metrics describe an earlier training: a, b)"
    )
    table = comparison.comparison_table(run).assign(collapsed_heads=["expression", ""])
    assert comparison.model_to_use(table) == "b"  # all old figures: still not a collapsed one


def test_a_half_written_model_is_not_named_as_a_model_to_evaluate(tmp_path: Path) -> None:
    """A run killed while its checkpoint was written leaves a hidden .<m>.partial.keras beside
    the models: notebook 06 names only the models themselves."""
    from helpers.models.saving import partial_path

    empty = comparison.comparison_table(tmp_path / "none")
    models = tmp_path / "run" / "models"
    models.mkdir(parents=True)
    partial_path(models / "vgg16.keras").write_bytes(b"half")
    assert comparison.evaluated_line(tmp_path / "run", empty, "smoke").endswith(
        "train a model with notebook 04, then run notebook 05 first"
    )
    (models / "custom_cnn.keras").write_bytes(b"model")
    assert comparison.evaluated_line(tmp_path / "run", empty, "smoke").endswith(
        ": run notebook 05 first (model = 'custom_cnn')"
    )


def test_evaluating_a_model_still_training_says_so_not_that_it_is_damaged(tmp_path: Path) -> None:
    run = _trained(tmp_path / "run")
    run.card_path("custom_cnn").unlink()  # notebook 04 writes the card as training ends
    with pytest.raises(DataError, match="still training or stopped before its model card") as e:
        scoring.trained_model(run, "custom_cnn")
    assert "run notebook 04 (model = 'custom_cnn') to its end (or ./run_all.sh --resume)" in str(
        e.value
    )
    assert "damaged" not in str(e.value)


def test_notebook_06_with_no_evaluated_model_says_which_notebook_to_run(tmp_path: Path) -> None:
    empty = comparison.comparison_table(tmp_path / "none")
    assert comparison.evaluated_line(tmp_path / "none", empty, "smoke") == (
        "run none: profile smoke, 0 models evaluated: train a model with notebook 04, then run "
        "notebook 05 first"
    )
    run = _trained(tmp_path / "run")
    assert comparison.evaluated_line(run, empty, "smoke").endswith(
        ": run notebook 05 first (model = 'custom_cnn')"
    )
    _scored(run)
    table = comparison.comparison_table(run)
    assert (
        comparison.evaluated_line(run, table, "smoke")
        == "run run: profile smoke, 1 model evaluated"
    )


def test_the_weights_digest_reads_the_arrays_alone_in_order() -> None:
    import numpy as np

    from helpers.core.trained import weights_sha256

    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, dtype=np.float32)
    assert weights_sha256([a, b]) == weights_sha256([a.copy(), b.copy()])
    assert weights_sha256([a, b]) == weights_sha256([np.asfortranarray(a), b])  # memory order
    assert weights_sha256([a, b]) == weights_sha256([a.astype(">f4"), b])  # byte order
    assert weights_sha256([a, b]) != weights_sha256([b, a])
    assert weights_sha256([a, b]) != weights_sha256([a.reshape(3, 2), b])
    assert weights_sha256([a, b]) != weights_sha256([a.astype(np.float64), b])
    changed = a.copy()
    changed[1, 2] = np.nextafter(changed[1, 2], np.float32(9))
    assert weights_sha256([a, b]) != weights_sha256([changed, b])


def test_the_same_weights_saved_twice_differ_in_the_files_digest_not_the_weights(
    tmp_path: Path,
) -> None:
    import zipfile

    from helpers.core.trained import weights_sha256
    from helpers.models.factory import build_model

    model = build_model("custom_cnn", image_size=16, channels=1, heads=("expression",), seed=0)
    saved = tmp_path / "saved.keras"
    model.save(saved)
    identities = []
    for name, compression in (("first", zipfile.ZIP_STORED), ("second", zipfile.ZIP_DEFLATED)):
        run = _trained(tmp_path / name)
        # the same members packed two ways: other file bytes, the same weights
        with (
            zipfile.ZipFile(saved) as src,
            zipfile.ZipFile(run.model_path("custom_cnn"), "w", compression) as out,
        ):
            for member in src.infolist():
                out.writestr(member.filename, src.read(member))
        loaded, identity = scoring.trained_model(run, "custom_cnn")
        identities.append(identity)
        assert identity["weights_sha256"] == weights_sha256(loaded.get_weights())
    first, second = identities
    assert first["model_sha256"] != second["model_sha256"]
    assert first["weights_sha256"] == second["weights_sha256"]
    assert first["weights_sha256"] == weights_sha256(model.get_weights())


def test_evaluating_a_model_in_its_first_training_says_to_let_it_end_not_to_train_it(
    tmp_path: Path,
) -> None:
    run = RunFolder(tmp_path / "run")
    run.checkpoints_dir("vggnet").mkdir(parents=True)
    (run.checkpoints_dir("vggnet") / "progress.json").write_text("{}")  # notebook 04 at work
    with pytest.raises(DataError) as caught:
        scoring.trained_model(run, "vggnet")
    assert str(caught.value) == (
        f"{run.model_path('vggnet')}: vggnet is still training or stopped before its model file "
        "was written: run notebook 04 (model = 'vggnet') to its end (or ./run_all.sh --resume) "
        "first"
    )
