"""k-fold cross-validation: the folds each record is tested in once, a person's faces in one
fold; the folds' runs summed up (every face pooled, and per fold), and refused when they are not
the folds of one cross-validation; ./run_all.sh --folds and --fold."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score

from helpers.core.errors import ConfigError, DataError
from helpers.core.jsonio import write_json
from helpers.core.labels import EXPRESSIONS
from helpers.core.records import make_records, save_records
from helpers.core.run_folder import RunFolder
from helpers.data import splits
from helpers.evaluation.predictions import save_predictions
from helpers.evaluation.scoring import evaluate, write_metrics
from helpers.reporting import folds as report
from helpers.reporting import methods
from helpers.run import runner

N, SUBJECTS = 300, 30


def _records(seed: int = 0, official: bool = False) -> pd.DataFrame:
    """Faces of 30 people over 7 classes, every class in every person's faces."""
    rng = np.random.default_rng(seed)
    table = {
        "id": [f"f{i:03d}" for i in range(N)],
        "image": [f"faces/f{i:03d}.png" for i in range(N)],
        "source": "jaffe",
        "expression": np.arange(N) % 7,
        "subject": [f"s{i % SUBJECTS}" for i in rng.permutation(N)],
    }
    if official:
        table["split"] = ["train"] * 250 + ["test"] * 50
    return make_records(table)


def _groups(table: pd.DataFrame) -> pd.Series:
    return splits.duplicate_groups(table, pd.DataFrame(columns=["id_a", "id_b"]))


def _all_folds(table: pd.DataFrame, k: int, seed: int = 0) -> list[pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few groups per class: assign_splits says so
        return [splits.assign_fold(table, k, i, seed=seed, groups=_groups(table)) for i in
                range(1, k + 1)]  # fmt: skip


def test_every_record_is_tested_once_over_the_folds_and_a_person_stays_in_one_split() -> None:
    table = _records(official=True)
    dealt = _all_folds(table, 5)
    tested = pd.concat([t.loc[t["split"] == "test", "id"] for t in dealt])
    assert sorted(tested) == sorted(table["id"]) and tested.is_unique
    for t in dealt:
        assert t.groupby("subject")["split"].nunique().max() == 1
        assert set(t["split"]) == {"train", "val", "test"}
        assert (t["split"] == "test").sum() == pytest.approx(N / 5, abs=10)  # six people each
    assert "set aside" in splits.fold_note(table, dealt[0], 5, 1)
    assert splits.fold_note(table.drop(columns="split"), dealt[0], 5, 1) == (
        f"cross-validation: fold 1 of 5 is the test split ({(dealt[0]['split'] == 'test').sum()}"
        f" of {N} records)"
    )


def test_folds_of_single_faces_are_stratified_and_one_seed_draws_one_set_of_folds() -> None:
    table = _records().drop(columns="subject").assign(split=None)
    first = _all_folds(table, 3, seed=4)
    again = _all_folds(table, 3, seed=4)
    other = _all_folds(table, 3, seed=5)
    assert all(a["split"].equals(b["split"]) for a, b in zip(first, again, strict=True))
    assert not all(a["split"].equals(b["split"]) for a, b in zip(first, other, strict=True))
    for t in first:
        counts = t.loc[t["split"] == "test", "expression"].value_counts()
        assert counts.min() >= counts.max() - 1  # each class dealt evenly into the folds


def test_bad_folds_are_refused_by_name() -> None:
    table = _records()
    for folds, fold in ((1, 1), (5, 0), (5, 6), (2.5, 1)):
        with pytest.raises(ConfigError, match="fold"):
            splits.assign_fold(table, folds, fold)  # type: ignore[arg-type]
    few = table[table["subject"].isin(["s0", "s1", "s2"])]
    with pytest.raises(DataError, match="5 folds need 5 groups or more; the 30 records form 3"):
        splits.assign_fold(few, 5, 1, groups=_groups(few))


def test_notebook_03s_split_is_a_plain_split_or_one_fold_with_its_line() -> None:
    table = _records(official=True)
    plain, line = splits.split_records(table, None, val_share=0.1, test_share=0.1, seed=2)
    assert line is None and plain["split"].equals(splits.assign_splits(table, 0.1, 0.1, 2)["split"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dealt, line = splits.split_records(
            table, _groups(table), val_share=0.1, test_share=0.1, seed=2, folds=5, fold=3
        )
        same = splits.assign_fold(table, 5, 3, val_share=0.1, seed=2, groups=_groups(table))
    assert dealt["split"].equals(same["split"]) and line == splits.fold_note(table, dealt, 5, 3)


@pytest.mark.filterwarnings("ignore:assign_splits")
def test_a_fold_per_person_deals_people_when_no_class_can_be_stratified() -> None:
    """Leave-one-subject-out on a CK+-like set (12 people, no class with 12 faces): the folds
    are dealt by person alone, a warning says so, and each fold tests one person."""
    table = make_records(
        {
            "id": [f"c{i:02d}" for i in range(36)],
            "image": [f"ck/c{i:02d}.png" for i in range(36)],
            "source": "ck",
            "expression": np.arange(36) % 7,
            "subject": [f"S{i // 3:03d}" for i in range(36)],
        }
    )
    people = []
    for fold in range(1, 13):
        with pytest.warns(UserWarning, match="dealt by group alone, not stratified"):
            dealt = splits.assign_fold(table, 12, fold, seed=0, groups=_groups(table))
        people.append(set(dealt.loc[dealt["split"] == "test", "subject"]))
    assert all(len(p) == 1 for p in people) and len(set().union(*people)) == 12
    assert not splits.stratifiable(table["expression"], 12)
    assert splits.stratifiable(table["expression"], 6) and not splits.stratifiable([], 2)


# ------------------------------------------------------------------ the folds' runs summed up


def _fold_run(
    folder: Path,
    table: pd.DataFrame,
    fold: int,
    k: int,
    truth_wrong: float = 0.2,
    seed: int = 0,
    models: tuple[str, ...] = ("cnn", "vgg"),
) -> Path:
    """A fold's run folder as ./run_all.sh --fold leaves it: manifest, splits, and per model
    the test predictions and metrics JSON (wrong on a seeded share of the faces)."""
    test = table[table["split"] == "test"].reset_index(drop=True)
    rng = np.random.default_rng(fold)
    for model in models:
        truth = test["expression"].to_numpy()
        wrong = rng.random(len(test)) < (truth_wrong if model == "cnn" else 0.5)
        pred = np.where(wrong, (truth + 1) % 7, truth)
        proba = np.full((len(test), 8), 0.04)  # an 8-class model on data of 7 classes
        proba[np.arange(len(test)), pred] = 0.5
        contempt = rng.random(len(test)) < 0.1  # Contempt first: right once confined to 7
        proba[contempt, 7] = 0.6
        predictions = pd.DataFrame(
            {
                "id": test["id"],
                "expression": truth,
                "expression_pred": np.where(contempt, 7, pred),
                **{f"p_{EXPRESSIONS[c]}": proba[:, c] for c in range(8)},
            }
        )
        save_predictions(predictions, RunFolder(folder).predictions_path(model))
        scores = evaluate(model, predictions, n_boot=50, classes=list(range(7)))
        write_metrics(scores, RunFolder(folder).metrics_path(model))
    save_records(table, RunFolder(folder).splits)
    save_records(table.drop(columns="split").assign(split=None), RunFolder(folder).records)
    manifest = {
        "profile": {"name": "cpu"},
        "seed": seed,
        "data": {"path": "/data/jaffe.zip", "sha256": "j", "demo": False},
        "fold": {"fold": fold, "folds": k},
    }
    write_json(folder / "manifest.json", manifest)
    return folder


@pytest.fixture()
def fold_runs(tmp_path: Path) -> list[Path]:
    dealt = _all_folds(_records(), 3)
    return [_fold_run(tmp_path / f"fold-{i}", t, i, 3) for i, t in enumerate(dealt, start=1)]


def test_the_folds_are_pooled_over_every_face_and_spread_over_the_folds(
    fold_runs: list[Path],
) -> None:
    table = report.folds_table(list(reversed(fold_runs))).set_index("model")
    pooled = pd.concat(
        [pd.read_parquet(RunFolder(run).predictions_path("cnn")) for run in fold_runs]
    )
    confined = pooled[[f"p_{name}" for name in EXPRESSIONS[:7]]].to_numpy().argmax(axis=1)
    accuracy = accuracy_score(pooled["expression"], confined)
    f1 = f1_score(pooled["expression"], confined, average="macro")
    assert accuracy > accuracy_score(pooled["expression"], pooled["expression_pred"]) + 0.05
    assert table.loc["cnn", "faces"] == N and table.loc["cnn", "folds"] == "1, 2, 3"
    assert table.loc["cnn", "expression_accuracy_pooled"] == pytest.approx(accuracy)
    assert table.loc["cnn", "expression_f1_macro_pooled"] == pytest.approx(f1)
    low, high = table.loc["cnn", ["expression_accuracy_pooled_ci_low",
                                  "expression_accuracy_pooled_ci_high"]]  # fmt: skip
    assert low < accuracy < high
    per_fold = [
        json.loads(RunFolder(run).metrics_path("cnn").read_text())["expression"]["accuracy"]
        for run in fold_runs
    ]
    assert table.loc["cnn", "expression_accuracy_mean"] == pytest.approx(np.mean(per_fold))
    assert table.loc["cnn", "expression_accuracy_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    assert table.loc["vgg", "expression_accuracy_pooled"] < 0.6 < accuracy
    text = report.to_markdown(report.folds_table(fold_runs))
    cell = (
        f"{accuracy:.3f} [{low:.3f}, {high:.3f}]; folds {np.mean(per_fold):.3f} ± "
        f"{np.std(per_fold, ddof=1):.3f}"
    )
    assert f"| cnn | {N} | one view | {cell} |" in text
    assert "3-fold cross-validation of the `cpu` profile, seed 0" in text
    assert "each person's faces and near-duplicate images in one fold" in text
    assert "interval drawing a person's faces together" in text
    metrics_path = RunFolder(fold_runs[1]).metrics_path("vgg")
    metrics_path.write_text(json.dumps({**json.loads(metrics_path.read_text()), "tta": "flip"}))
    assert "| vgg | 300 | one view in 2, flip in 1 |" in report.to_markdown(
        report.folds_table(fold_runs)
    )
    checked = report.check_folds(fold_runs)
    method = report.pooled_metrics(checked, "cnn")["ci"]["method"]  # type: ignore[index]
    assert method == "percentile bootstrap over groups of images, each group drawn whole"


def test_folds_scored_without_intervals_are_pooled_without_them(fold_runs: list[Path]) -> None:
    for run in fold_runs:
        for model in ("cnn", "vgg"):
            path = RunFolder(run).metrics_path(model)
            path.write_text(json.dumps({**json.loads(path.read_text()), "ci": None}))
    table = report.folds_table(fold_runs).set_index("model")
    assert pd.notna(table.loc["cnn", "expression_accuracy_pooled"])
    assert "expression_accuracy_pooled_ci_low" not in table or table[
        "expression_accuracy_pooled_ci_low"
    ].isna().all()  # fmt: skip
    assert table.attrs["leads"] is None and "ci" not in table.attrs["pooled"]["cnn"]


def test_a_model_without_a_folds_predictions_keeps_its_spread_and_no_pooled_figure(
    fold_runs: list[Path],
) -> None:
    RunFolder(fold_runs[1]).predictions_path("vgg").unlink()
    table = report.folds_table(fold_runs).set_index("model")
    assert pd.isna(table.loc["vgg", "expression_accuracy_pooled"])
    assert table.loc["vgg", "runs"] == 3 and pd.notna(table.loc["vgg", "expression_accuracy_mean"])
    assert "| vgg |  | one view | folds " in report.to_markdown(report.folds_table(fold_runs))


def test_runs_that_are_not_the_folds_of_one_cross_validation_are_refused(
    tmp_path: Path, fold_runs: list[Path]
) -> None:
    def manifest_edit(run: Path, **changes: object) -> None:
        path = run / "manifest.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    with pytest.raises(ConfigError, match="fold 3 of 3 is missing"):
        report.folds_table(fold_runs[:2])
    manifest_edit(fold_runs[1], fold={"fold": 2, "folds": 4})
    manifest_edit(fold_runs[0], fold={"fold": 1, "folds": 4})
    with pytest.raises(ConfigError, match="folds 3, 4 of 4 are missing"):
        report.folds_table(fold_runs[:2])
    manifest_edit(fold_runs[0], fold={"fold": 1, "folds": 3})
    manifest_edit(fold_runs[1], fold={"fold": 2, "folds": 3})
    manifest_edit(fold_runs[2], fold={"fold": 2, "folds": 3})
    with pytest.raises(ConfigError, match="fold 2 is given twice"):
        report.folds_table(fold_runs)
    manifest_edit(fold_runs[2], fold={"fold": 3, "folds": 4})
    with pytest.raises(ConfigError, match="different numbers of folds"):
        report.folds_table(fold_runs)
    manifest_edit(fold_runs[2], fold={"fold": 3, "folds": 3}, seed=1)
    with pytest.raises(ConfigError, match="different seeds"):
        report.folds_table(fold_runs)
    manifest_edit(fold_runs[2], seed=0, fold=None)
    with pytest.raises(ConfigError, match="fold-3: not a fold's run"):
        report.folds_table(fold_runs)
    manifest_edit(fold_runs[2], fold={"fold": 3, "folds": 3}, parameters={"epochs": 2})
    with pytest.raises(ConfigError, match="different --set parameters"):
        report.folds_table(fold_runs)


def test_folds_dealt_otherwise_or_testing_a_face_twice_or_never_are_refused(
    tmp_path: Path, fold_runs: list[Path]
) -> None:
    other = _all_folds(_records(), 3, seed=1)  # another seed: other folds
    elsewhere = _fold_run(tmp_path / "other-2", other[1], 2, 3)
    with pytest.raises(ConfigError, match="fold-1 and other-2 dealt the faces into different"):
        report.folds_table([fold_runs[0], elsewhere, fold_runs[2]])
    first = RunFolder(fold_runs[0]).predictions_path("cnn")
    second = RunFolder(fold_runs[1]).predictions_path("cnn")
    own = pd.read_parquet(second)
    save_predictions(pd.concat([pd.read_parquet(first), own], ignore_index=True), second)
    with pytest.raises(
        DataError, match=r"face f\d+ is in the test predictions of fold-1 and fold-2"
    ):
        report.folds_table(fold_runs)
    save_predictions(own.iloc[5:], second)
    with pytest.raises(DataError, match="5 faces were tested in no fold"):
        report.folds_table(fold_runs)


def test_the_command_writes_the_three_files_and_says_what_is_wrong(
    tmp_path: Path, fold_runs: list[Path]
) -> None:
    out = tmp_path / "summary"
    command = [sys.executable, "-m", "helpers.folds", *map(str, fold_runs), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "folds.csv",
        "folds.md",
        "folds.tex",
        "folds_confusion.pdf",
        "folds_confusion.png",
        "folds_leads.csv",
        "pooled",
    ]
    with Image.open(out / "folds_confusion.png") as image:  # for print, as the report's figures
        assert round(image.info["dpi"][0]) == 300
    assert (out / "folds_confusion.pdf").read_bytes()[:5] == b"%PDF-"
    faces = pd.read_csv(out / "folds.csv")["faces"]
    assert faces.dtype.kind == "i" and faces.tolist() == [N, N]  # a count: 300, not 300.0
    leads = pd.read_csv(out / "folds_leads.csv")
    assert leads[["task", "best", "other"]].values.tolist() == [["expression", "cnn", "vgg"]]
    assert leads.loc[0, "lead_ci_low"] > 0 and leads.loc[0, "n"] == N
    text = (out / "folds.md").read_text()
    assert "| expression | macro F1 | cnn 0.7" in text and "a person drawn whole" in text
    assert "leads over every face: expression: cnn ahead of every other model." in text
    pooled = json.loads((out / "pooled" / "cnn.json").read_text())
    assert np.sum(pooled["expression"]["confusion_matrix"]) == N and pooled["n"] == N
    assert sorted(p.name for p in (out / "pooled").iterdir()) == ["cnn.json", "vgg.json"]
    tex = (out / "folds.tex").read_text()
    assert "\\label{tab:folds-summary}" in tex and "$\\pm$" in tex and "±" not in tex
    bad = [sys.executable, "-m", "helpers.folds", str(fold_runs[0]), str(fold_runs[1])]
    done = subprocess.run(bad, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.startswith("error: fold 3 of 3 is missing")


def test_the_methods_section_says_which_fold_was_tested(fold_runs: list[Path]) -> None:
    text = methods.methods(fold_runs[1]).text
    assert "This run is fold 2 of a 3-fold cross-validation" in text
    assert "each person's images kept in one fold" in text
    assert "folds stratified by expression with scikit-learn" in text
    many = fold_runs[1] / "manifest.json"  # more folds than any class has faces
    many.write_text(json.dumps({**json.loads(many.read_text()), "fold": {"fold": 2, "folds": 50}}))
    assert "50 folds by group alone (no class has a face for every fold)" in " ".join(
        methods.methods(fold_runs[1]).text.split()
    )
    manifest = fold_runs[2] / "manifest.json"  # notebook 03 given folds by hand: no --fold
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "fold": None}))
    assert "This run is fold 3 of a 3-fold cross-validation" in methods.methods(fold_runs[2]).text


# ------------------------------------------------------------------ ./run_all.sh --folds


def _fake_fold_run(calls: list[list[str]], fail: int | None = None):
    """A stand-in for one fold's ./run_all.sh: records its command line and leaves that fold's
    run folder (the folds dealt from the --seed it was given)."""
    table = _records()

    def run_one(argv: list[str], rerun: bool = False) -> int:
        calls.append(argv)
        fold, k = runner.parse_fold(argv[argv.index("--fold") + 1])
        seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
        run = Path(argv[argv.index("--run-dir") + 1])
        if fold == fail:
            run.mkdir(parents=True)
            write_json(run / "manifest.json", {"profile": {"name": "cpu"}})
            return 1
        dealt = _all_folds(table, k, seed=seed)[fold - 1]
        _fold_run(run, dealt, fold, k, seed=seed)
        return 0

    return run_one


def test_folds_run_each_fold_then_sum_them_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(runner, "run_one", _fake_fold_run(calls))
    base = tmp_path / "cv"
    argv = ["--data", "jaffe.zip", "--folds", "3", "--seed", "2", "--run-dir", str(base)]
    assert runner.main(argv) == 0
    shared = ["--data", "jaffe.zip", "--seed", "2"]
    assert calls == [
        [*shared, "--fold", f"{i}/3", "--run-dir", str(base / f"fold-{i}")] for i in (1, 2, 3)
    ]
    out = capsys.readouterr().out
    assert "[run_all] fold 2 of 3: " in out and out.splitlines()[-1] == str(base)
    assert "| cnn | 300 | one view | " in (base / "folds.md").read_text()
    assert {p.name for p in base.iterdir()} >= {"fold-1", "fold-3", "folds.csv", "folds.tex"}


def test_a_stopped_fold_is_gone_on_with_by_the_same_command_and_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(runner, "run_one", _fake_fold_run(calls, fail=2))
    base = tmp_path / "cv"
    assert runner.main(["--folds", "3", "--run-dir", str(base)]) == 1
    assert len(calls) == 2 and not (base / "fold-3").exists()
    hint = f"go on with: ./run_all.sh --folds 3 --run-dir {base} --resume"
    assert hint in capsys.readouterr().err
    calls.clear()
    (base / "fold-2" / "manifest.json").unlink()
    (base / "fold-2").rmdir()
    monkeypatch.setattr(runner, "run_one", _fake_fold_run(calls))
    assert runner.main(["--folds", "3", "--run-dir", str(base), "--resume"]) == 0
    assert [c[-1] for c in calls] == ["--resume", str(base / "fold-2"), str(base / "fold-3")]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--folds", "1"], "two folds or more"),
        (["--folds", "x"], "a whole number of folds"),
        (["--folds", "3", "--fold", "1/3"], "leave out --fold"),
        (["--folds", "3", "--seeds", "0,1"], "one or the other"),
        (["--seeds", "0,1", "--fold", "1/3"], "each seed deals other folds"),
        (["--fold", "4/3"], "I/K with 1 <= I <= K"),
        (["--fold", "1/1"], "I/K with 1 <= I <= K"),
        (["--fold", "2"], "I/K with 1 <= I <= K"),
        (["--set", "fold=2"], "fold is set with --fold or --folds"),
        (["--folds", "3", "--resume"], "needs --run-dir naming the folds' folder"),
    ],
)
def test_bad_folds_are_refused_before_any_run(
    argv: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(runner, "run_one", lambda argv, rerun=False: pytest.fail("ran a fold"))
    monkeypatch.setattr(runner, "run_stages", lambda *a: pytest.fail("ran a stage"))
    assert runner.main(argv) == 2
    assert says in capsys.readouterr().err


def test_a_folds_run_records_its_fold_passes_it_to_notebook_03_and_a_resume_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    passed: dict[str, dict] = {}

    def execute(stage, run_dir, params, log_output, settings=None):
        passed[stage.name] = params
        out = run_dir / "notebooks" / f"{stage.name}.ipynb"
        out.parent.mkdir(exist_ok=True)
        out.write_text("{}")
        return out

    monkeypatch.setattr(runner, "execute_stage", execute)
    monkeypatch.setattr(runner, "export_html", lambda *a: None)
    data = tmp_path / "faces.zip"
    data.write_bytes(b"zip")
    run = tmp_path / "run"
    argv = ["--data", str(data), "--fold", "2/5", "--run-dir", str(run), "--only", "01,03"]
    assert runner.main(argv) == 0
    assert json.loads((run / "manifest.json").read_text())["fold"] == {"fold": 2, "folds": 5}
    assert passed["03_augment"]["fold"] == 2 and passed["03_augment"]["folds"] == 5
    capsys.readouterr()
    resume = ["--resume", "--run-dir", str(run), "--fold", "3/5"]
    assert runner.main(resume) == 2
    assert "was started with --fold 2/5; a resume keeps it" in capsys.readouterr().err


def test_a_leaderboard_of_several_folds_says_their_test_faces_differ(
    tmp_path: Path, fold_runs: list[Path]
) -> None:
    from helpers.evaluation.leaderboard import merge_runs

    notes = merge_runs(fold_runs[:2], path=tmp_path / "board.csv").attrs["notes"]
    assert notes == [
        "the runs tested different folds of a cross-validation, or a fold and a whole test split "
        "(python -m helpers.folds sums folds up)"
    ]
    assert merge_runs(fold_runs[:1], path=tmp_path / "other.csv").attrs["notes"] == []


def test_notebook_03_tests_the_fold_the_run_is_given(tmp_path: Path) -> None:
    """Notebooks 01 and 03 as ./run_all.sh --fold 2/3 runs them: the saved split's test faces
    are fold 2 of the folds dealt into it, and another fold's run tests others."""
    from helpers.core.records import load_records
    from helpers.data.synthetic import generate_zip

    data = tmp_path / "faces.zip"
    generate_zip(data, n=60, seed=1, size=48, progress=False)
    tested = []
    for fold in (2, 3):
        run = tmp_path / f"fold-{fold}"
        argv = ["--profile", "smoke", "--data", str(data), "--fold", f"{fold}/3"]
        assert runner.main([*argv, "--run-dir", str(run), "--only", "01,03"]) == 0
        table = load_records(RunFolder(run).splits)
        assert set(table["fold"]) == {1, 2, 3}
        test = table.loc[table["split"] == "test", "id"]
        assert sorted(test) == sorted(table.loc[table["fold"] == fold, "id"])
        tested.append(set(test))
        log = (run / "notebooks" / "03_augment.ipynb").read_text()
        assert f"cross-validation: fold {fold} of 3 is the test split" in log
    assert tested[0] and tested[1] and not tested[0] & tested[1]


def test_notebook_05s_intervals_draw_a_persons_faces_together_where_the_data_names_them(
    tmp_path: Path,
) -> None:
    """evaluate_model, as notebook 05 scores a test split or a test set: with `subject` (JAFFE,
    CK+) the intervals draw people, the point figures unchanged; without it, images."""
    from helpers.data.datasets import read_source
    from helpers.data.synthetic import generate_zip
    from helpers.evaluation.scoring import evaluate_model, person_groups
    from helpers.models.factory import build_model

    generate_zip(tmp_path / "faces.zip", n=48, seed=2, size=48, progress=False)
    table = read_source(tmp_path / "faces.zip").records
    table = table[table["expression"] >= 0].reset_index(drop=True)
    model = build_model("custom_cnn", image_size=48, channels=3, heads=("expression",), seed=0)
    plain, predictions = evaluate_model(model, "m", table, n_boot=200, batch_size=16)
    people = table.assign(subject=[f"p{i % 6}" if i % 7 else None for i in range(len(table))])
    grouped, _ = evaluate_model(model, "m", people, n_boot=200, batch_size=16)
    assert plain["ci"]["method"] == "percentile bootstrap over images"
    assert grouped["ci"]["method"].startswith("percentile bootstrap over groups of images")
    assert grouped["expression"]["accuracy"] == plain["expression"]["accuracy"]
    assert grouped["expression"]["accuracy_ci"] != plain["expression"]["accuracy_ci"]
    groups = person_groups(people, predictions)
    assert groups is not None and groups[0] == f"face {people['id'][0]}"
    assert groups[1] == "person p1" and len(set(groups)) == 6 + (len(table) + 6) // 7
    assert grouped["ci"]["groups"] == len(set(groups)) and "groups" not in plain["ci"]
    one, _ = evaluate_model(model, "m", table.assign(subject="p0"), n_boot=20)
    assert one["ci"]["method"].endswith("over images")  # one person: no spread over people
    assert one["notes"][-1].startswith("the test faces are all of one person: the intervals")


def test_the_folder_of_a_folds_series_stands_for_its_runs(
    fold_runs: list[Path], tmp_path: Path
) -> None:
    checked = report.check_folds([tmp_path])  # the folder ./run_all.sh --folds 3 filled
    assert checked.runs == tuple(fold_runs) and checked.folds == (1, 2, 3)
    with pytest.raises(ConfigError) as caught:
        report.check_folds([fold_runs[2], fold_runs[0], fold_runs[1], fold_runs[1]])
    assert str(caught.value) == f"a run folder is given twice: {fold_runs[1]}"
