"""The run folder's layout is a contract (DESIGN.md): every stage finds files through RunFolder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.core.errors import ConfigError
from helpers.core.run_folder import RunFolder


def test_the_layout_every_stage_relies_on(tmp_path):
    run = RunFolder(tmp_path)
    rel = {
        k: os.path.relpath(v, tmp_path)
        for k, v in {
            "records": run.records,
            "splits": run.splits,
            "train": run.train_table,
            "augment": run.augment_settings,
            "manifest": run.manifest,
            "settings": run.settings,
            "report": run.report,
            "model": run.model_path("vgg16"),
            "card": run.card_path("vgg16"),
            "history": run.history_path("vgg16"),
            "checkpoints": run.checkpoints_dir("vgg16"),
            "metrics": run.metrics_path("vgg16"),
            "external": run.metrics_path("vgg16", "ckplus"),
            "predictions": run.predictions_path("vgg16"),
            "export": run.deployment_path("vgg16"),
        }.items()
    }
    assert rel == {
        "records": "records.parquet",
        "splits": "splits.parquet",
        "train": "train.parquet",
        "augment": "augment.json",
        "manifest": "manifest.json",
        "settings": "settings.json",
        "report": "report.html",
        "model": "models/vgg16.keras",
        "card": "models/vgg16.json",
        "history": "history/vgg16.csv",
        "checkpoints": "checkpoints/vgg16",
        "metrics": "metrics/vgg16.json",
        "external": "metrics/vgg16.ckplus.json",
        "predictions": "predictions/vgg16.parquet",
        "export": "export/vgg16.json",
    }


def test_it_stands_in_for_a_path(tmp_path):
    run = RunFolder(tmp_path)
    assert run / "eda" == tmp_path / "eda" and os.fspath(run) == str(tmp_path)
    assert run.name == tmp_path.name and run == tmp_path and Path(run) == tmp_path


def test_metrics_files_are_told_apart_by_dataset(tmp_path):
    run = RunFolder(tmp_path)
    for path in (
        run.metrics_path("a"),
        run.metrics_path("b"),
        run.metrics_path("a", "jaffe"),
        run.metrics_path("b", "ckplus"),
    ):
        path.parent.mkdir(exist_ok=True)
        path.write_text("{}")
    assert [p.name for p in run.metrics_files()] == ["a.json", "b.json"]
    assert [p.name for p in run.metrics_files("jaffe")] == ["a.jaffe.json"]
    assert run.external_datasets() == ["ckplus", "jaffe"]


def test_resolve_makes_a_new_folder_or_finds_the_latest(tmp_path, monkeypatch):
    from helpers.core import paths

    monkeypatch.setattr(paths, "REPORTS_DIR", tmp_path / "reports")
    first = RunFolder.resolve("", create=True)
    first.records.write_bytes(b"x")
    assert RunFolder.resolve("") == first
    given = RunFolder.resolve(str(tmp_path / "mine"), create=True)
    assert given.root.is_dir() and given.root.is_absolute()
    assert RunFolder.resolve(str(tmp_path / "mine")) == given
    # A later notebook's mistyped run_dir is an error, not a new empty folder.
    with pytest.raises(ConfigError, match="does not exist"):
        RunFolder.resolve(str(tmp_path / "mien"))
    assert not (tmp_path / "mien").exists()


def test_the_notebooks_after_01_follow_the_profile_it_recorded(tmp_path, capsys):
    from helpers.run import profiles

    run = RunFolder(tmp_path)
    assert profiles.of_run(run, None) == "cpu"  # nothing recorded: the default
    (tmp_path / "manifest.json").write_text('{"profile": {"name": "gpu"}}')
    assert profiles.of_run(run, None) == "gpu"  # run_all.sh's manifest
    profiles.record_profile(run, "smoke")
    assert profiles.of_run(run, None) == "smoke"
    assert profiles.of_run(run, "cpu") == "cpu"  # a notebook's own choice wins, and is said
    assert "profile cpu given" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="unknown profile"):
        profiles.record_profile(run, "smok")


def test_notebook_01_records_the_data_it_read_and_the_manifest_stays_the_authority(
    tmp_path, monkeypatch
):
    import hashlib

    from helpers.core import paths
    from helpers.core.run_folder import recorded_data
    from helpers.run import profiles

    monkeypatch.setattr(paths, "DEMO_DIR", tmp_path / "demo")
    demo = profiles.demo_zip_path("smoke", 0)
    demo.parent.mkdir()
    demo.write_bytes(b"generated faces")
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    assert recorded_data(run) == {}
    profiles.record_profile(run, "smoke")
    profiles.record_data(run, demo, "smoke", 0)
    expected = {
        "path": str(demo.resolve()),
        "sha256": hashlib.sha256(b"generated faces").hexdigest(),
        "demo": True,
    }
    assert recorded_data(run) == expected
    assert profiles.of_run(run, None) == "smoke"  # the profile kept beside it
    own = tmp_path / "faces.zip"
    own.write_bytes(b"photos")
    profiles.record_data(run, own, "smoke", 0)
    assert recorded_data(run)["demo"] is False
    run.manifest.write_text('{"data": {"path": "/d.zip", "sha256": "abc", "demo": false}}')
    assert recorded_data(run) == {"path": "/d.zip", "sha256": "abc", "demo": False}


def test_paths_are_shown_without_the_machines_folders(tmp_path):
    from helpers.core import paths

    assert paths.shown(paths.REPORTS_DIR / "leaderboard.csv") == "reports/leaderboard.csv"
    assert paths.shown(tmp_path / "board.csv") == "board.csv"  # outside the project: the name


def test_external_test_sets_come_as_one_or_many():
    from helpers.evaluation.scoring import external_sources

    assert external_sources("") == [] and external_sources(None) == []
    assert external_sources("ck.zip") == ["ck.zip"]
    assert external_sources(["ck.zip", "jaffe", "ck.zip", ""]) == ["ck.zip", "jaffe"]


def test_importing_the_run_folder_loads_neither_pandas_nor_numpy():
    code = (
        "import sys, helpers.core.run_folder\n"
        "assert 'pandas' not in sys.modules and 'numpy' not in sys.modules, "
        "sorted(m for m in ('pandas', 'numpy') if m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_notebook_01_refuses_a_folder_that_holds_a_run_and_takes_an_empty_one(
    tmp_path, monkeypatch, capsys
):
    from helpers.core.run_folder import RUNNER_ENV

    monkeypatch.delenv(RUNNER_ENV, raising=False)
    for held in ("records.parquet", "manifest.json"):
        finished = tmp_path / held.partition(".")[0]
        finished.mkdir()
        (finished / held).write_text("{}")
        (finished / "settings.json").write_text("{}")
        with pytest.raises(ConfigError, match="already holds a run") as caught:
            RunFolder.resolve(str(finished), create=True)
        assert str(finished) in str(caught.value) and "--resume" in str(caught.value)
        assert (finished / held).read_text() == "{}"
    # a notebook 01 that stopped before its records (a mistyped data path), in a new kernel
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "settings.json").write_text("{}")
    assert RunFolder.resolve(str(unfinished), create=True) == unfinished
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "holds settings.json but no records" in said[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert RunFolder.resolve(str(empty), create=True) == empty
    # ./run_all.sh made the folder (its manifest is there) and runs notebook 01 in it
    made = tmp_path / "made"
    made.mkdir()
    (made / "manifest.json").write_text("{}")
    monkeypatch.setenv(RUNNER_ENV, str(made))
    assert RunFolder.resolve(str(made), create=True) == made
    with pytest.raises(ConfigError, match="already holds a run"):
        RunFolder.resolve(str(tmp_path / "records"), create=True)  # another folder still is


def test_notebook_01s_folder_cell_run_again_reuses_the_folder_it_made(tmp_path, monkeypatch):
    from helpers.core import paths
    from helpers.run import profiles

    monkeypatch.setattr(paths, "REPORTS_DIR", tmp_path / "reports")
    first = RunFolder.resolve("", create=True)
    profiles.record_profile(first, "smoke")  # as cell 4 does, before any records
    assert RunFolder.resolve("", create=True) == first
    assert [p.name for p in (tmp_path / "reports").iterdir()] == [first.name]
    given = RunFolder.resolve(str(tmp_path / "mine"), create=True)
    profiles.record_profile(given, "smoke")
    assert RunFolder.resolve(str(tmp_path / "mine"), create=True) == given  # its own, again
    first.records.write_bytes(b"x")  # the records saved: that run is started
    assert RunFolder.resolve("", create=True) != first


def test_the_notebooks_after_01_say_which_run_they_continue_and_what_to_run_first(
    tmp_path, monkeypatch
):
    from helpers.core import paths
    from helpers.core.errors import DataError

    monkeypatch.setattr(paths, "REPORTS_DIR", tmp_path / "reports")
    for name in ("20261207-133759", "20261207-133801"):
        (tmp_path / "reports" / name).mkdir(parents=True)
        (tmp_path / "reports" / name / "records.parquet").write_bytes(b"x")
    newest = RunFolder.resolve("")
    assert newest.continued == (
        "run folder 20261207-133801 (the newest run under reports/ with records; set run_dir "
        "for another)"
    )
    given = RunFolder.resolve(str(tmp_path / "reports" / "20261207-133759"))
    assert given.continued == "run folder 20261207-133759 (run_dir)"
    with pytest.raises(DataError, match=r"splits\.parquet: not found .*: run notebook 03 first"):
        given.need(given.splits)
    assert given.need(given.records) == given.records


def test_the_code_version_says_whether_it_had_uncommitted_changes(tmp_path, monkeypatch):
    from helpers.core import paths
    from helpers.core.run_folder import recorded_code
    from helpers.run import profiles

    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "clone")
    assert paths.source_version() == {"git_commit": None, "git_dirty": None}  # no git clone
    clone = tmp_path / "clone"
    (clone / "src").mkdir(parents=True)
    (clone / "notebooks").mkdir()
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (clone / "src" / "a.py").write_text("x = 1\n")
    (clone / "README.md").write_text("# read me\n")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    nbformat.write(nb, clone / "notebooks" / "01_extract.ipynb")
    subprocess.run([*git, "add", "src", "README.md", "notebooks"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    (clone / "notes.txt").write_text("not code")  # untracked, outside src/ and notebooks/
    clean = paths.source_version()
    assert len(clean["git_commit"]) == 40 and clean["git_dirty"] is False
    (clone / "README.md").write_text("# read me, changed\n")  # docs are not code
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[0].execution_count = 1
    nb.metadata["widgets"] = {"saved": "by Jupyter"}
    nbformat.write(nb, clone / "notebooks" / "01_extract.ipynb")  # run and saved: same code
    assert paths.source_version()["git_dirty"] is False
    nb.cells[0].source = "print(2)"
    nbformat.write(nb, clone / "notebooks" / "01_extract.ipynb")  # a code cell edited
    assert paths.source_version()["git_dirty"] is True
    subprocess.run([*git, "checkout", "-q", "--", "notebooks"], check=True)
    assert paths.source_version()["git_dirty"] is False
    (clone / "src" / "new.py").write_text("")  # a new module: the commit cannot rebuild it
    assert paths.source_version()["git_dirty"] is True
    (clone / "src" / "new.py").unlink()
    (clone / "src" / "a.py").write_text("x = 2\n")
    assert paths.source_version()["git_dirty"] is True
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    profiles.record_profile(run, "smoke")  # notebook 01 by hand records it too
    assert recorded_code(run) == {"git_commit": clean["git_commit"], "git_dirty": True}


def test_every_notebook_after_01_names_the_run_it_continues():
    import nbformat

    from helpers.core import paths

    for number in ("02", "03", "04", "05", "06", "07"):
        (path,) = paths.NOTEBOOKS_DIR.glob(f"{number}_*.ipynb")
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
        assert "print(run.continued)" in source, path.name


def test_notebook_04_without_notebook_03s_split_says_to_run_it_first(tmp_path):
    from helpers.core.errors import DataError
    from helpers.train import fit

    with pytest.raises(DataError, match="run notebook 03 first"):
        fit.load_training_inputs(tmp_path)


def test_the_code_version_is_recorded_for_a_clone_whose_path_has_spaces(tmp_path, monkeypatch):
    from helpers.core import paths

    clone = tmp_path / "my projects" / "affect repo"
    (clone / "src").mkdir(parents=True)
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (clone / "src" / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "src"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    monkeypatch.setattr(paths, "REPO_ROOT", clone)
    version = paths.source_version()
    assert len(version["git_commit"] or "") == 40 and version["git_dirty"] is False


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"profile": "smok"}, "unknown profile 'smok'"),
        ({"data": "data/demo/any.zip"}, "data/demo/any.zip: not found in "),
        ({"data": "x.zip", "reader": "affectnett"}, "unknown reader 'affectnett'"),
    ],
)
def test_notebook_01_checks_its_parameters_before_it_makes_a_run_folder(
    given, said, tmp_path, monkeypatch
):
    from builders import run_cells
    from helpers.core import paths
    from helpers.core.errors import DataError

    monkeypatch.setattr(paths, "REPORTS_DIR", tmp_path / "reports")
    with pytest.raises((ConfigError, DataError), match=said):
        run_cells("01_extract", [2, 4], **given)
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_a_relative_data_path_not_found_says_where_it_was_read_from(tmp_path, monkeypatch):
    from helpers.core import paths
    from helpers.core.errors import DataError
    from helpers.data import datasets

    (tmp_path / "repo" / "notebooks").mkdir(parents=True)
    (tmp_path / "repo" / "data" / "demo").mkdir(parents=True)
    (tmp_path / "repo" / "data" / "demo" / "a.zip").write_bytes(b"PK")
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo" / "notebooks")  # the kernel's folder
    with pytest.raises(DataError) as caught:
        datasets.check_exists("data/demo/a.zip")  # as from the repository's root
    assert str(caught.value) == (
        f"data/demo/a.zip: not found in {tmp_path / 'repo' / 'notebooks'} (the working folder, "
        "where a relative path is read from; from there this repository's data/ is ../data/: "
        "'../data/demo/a.zip')"
    )
    with pytest.raises(DataError, match=r"typo\.zip: not found in .*data/ is \.\./data/\)$"):
        datasets.detect_source("../data/typo.zip")
    with pytest.raises(DataError, match=r"gone\.zip: not found$"):
        datasets.detect_source(tmp_path / "gone.zip")  # absolute: nothing to add
    assert datasets.check_exists("../data/demo/a.zip") == Path("../data/demo/a.zip")


def test_notebook_01_takes_the_printed_reports_form_of_run_dir_from_notebooks(
    tmp_path, monkeypatch, capsys
):
    from helpers.core import paths, run_folder

    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "reports" / "20261207-200034").mkdir(parents=True)  # left empty by a notebook 01
    monkeypatch.setattr(paths, "REPO_ROOT", repo)
    monkeypatch.setattr(paths, "REPORTS_DIR", repo / "reports")
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", repo / "notebooks")
    monkeypatch.setattr(run_folder, "_started", [])
    monkeypatch.chdir(repo / "notebooks")  # the kernel's folder
    again = RunFolder.resolve("reports/20261207-200034", create=True)
    assert again.root == repo / "reports" / "20261207-200034"
    assert "read from the repository root" in capsys.readouterr().out
    new = RunFolder.resolve("reports/mine", create=True)  # not there yet: under reports/ too
    assert new.root == repo / "reports" / "mine" and new.root.is_dir()
    assert "made under the repository root's reports/" in capsys.readouterr().out
    assert not (repo / "notebooks" / "reports").exists()
    other = RunFolder.resolve("elsewhere", create=True)  # any other name: the working folder
    assert other.root == repo / "notebooks" / "elsewhere"


def test_after_a_kernel_restart_notebook_01_takes_again_the_folder_it_left_with_settings_only(
    tmp_path, monkeypatch, capsys
):
    import json
    import socket

    from helpers.core import paths, run_folder
    from helpers.run import profiles

    monkeypatch.setattr(paths, "REPORTS_DIR", tmp_path / "reports")
    ended = 2**22 + 1  # above any Linux pid_max: a process that cannot be running
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    mine = {"pid": os.getpid(), "host": socket.gethostname()}

    def left(name: str, pid: int, *extra: str) -> Path:
        """A notebook 01 that stopped in a kernel with this pid, before its records."""
        folder = tmp_path / "reports" / name
        folder.mkdir(parents=True)
        profiles.record_profile(RunFolder(folder), "smoke")
        settings = json.loads((folder / "settings.json").read_text())
        assert settings.get("process", mine) == mine  # notebook 01 notes who writes the folder
        settings["process"] = {**mine, "pid": pid}
        (folder / "settings.json").write_text(json.dumps(settings))
        for other in extra:
            (folder / other).write_text("x")
        return folder

    try:
        stopped = left("20261207-200034", ended)
        left("20261207-200100", ended, "notes.txt")  # something else there: kept
        left("20261207-200200", running.pid)  # another kernel still reading its data
        monkeypatch.setattr(run_folder, "_started", [])  # a new kernel
        again = RunFolder.resolve("", create=True)
        assert again == stopped
        said = capsys.readouterr().out
        assert "20261207-200034 holds only the settings.json of a notebook 01" in said
        assert RunFolder.resolve("", create=True) == stopped  # its folder cell run again
        profiles.record_profile(again, "smoke")
        again.records.write_bytes(b"x")
        profiles.record_data(again, tmp_path / "reports", "smoke")
        assert "process" not in json.loads(again.settings.read_text())  # the run is saved
        newer = RunFolder.resolve("", create=True)
        assert newer.root.parent == tmp_path / "reports" and newer.name > "20261207-200200"
    finally:
        running.kill()
        running.wait()
    # a settings.json without the process that wrote it, or from another machine: kept
    for mark in (None, {"pid": ended, "host": "elsewhere"}):
        base = tmp_path / f"other-{mark is None}"
        (base / "20261207-200034").mkdir(parents=True)
        text = {"profile": "smoke"} if mark is None else {"profile": "smoke", "process": mark}
        (base / "20261207-200034" / "settings.json").write_text(json.dumps(text))
        assert run_folder._stray(base) is None
