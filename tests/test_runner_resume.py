"""run_all.sh's --resume and --only: what runs again, what is refused, what a stop prints."""

import json
import shlex
from types import SimpleNamespace

import pytest

from helpers.core import paths
from helpers.run import runner
from test_runner import _notebook


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """Four stages in place of the notebooks (two of them once per model), each run recorded
    instead of executed; `fake.stop_at` names a stage that is interrupted as Ctrl-C does."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(folder / "01_extract.ipynb", "run_dir = ''\ndata = ''")
    train = "run_dir = ''\nmodel = 'a'\nepochs = None\noptimizer = None"
    _notebook(folder / "04_train.ipynb", train)
    _notebook(folder / "05_evaluate.ipynb", "run_dir = ''\nmodel = 'a'\ntta = None")
    _notebook(folder / "06_summary.ipynb", "run_dir = ''")
    monkeypatch.setattr(runner.paths, "NOTEBOOKS_DIR", folder)
    data = tmp_path / "data.zip"
    data.write_bytes(b"PK")

    fake = SimpleNamespace(ran=[], stop_at="", settings={})
    fake.argv = ["--profile", "smoke", "--data", str(data), "--models", "custom_cnn"]

    def execute(stage, run_dir, params, log_output, settings=None):
        if stage.name == fake.stop_at:
            raise KeyboardInterrupt
        fake.ran.append(stage.name)
        fake.settings[stage.name] = settings
        return run_dir / "notebooks" / f"{stage.name}.ipynb"

    monkeypatch.setattr(runner, "execute_stage", execute)
    monkeypatch.setattr(runner, "export_html", lambda out, html: out)
    return fake


def statuses(run):
    """Stage -> status, as the manifest records them."""
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    return {name: record["status"] for name, record in stages.items()}


def test_a_resume_that_adds_a_model_runs_the_stages_after_it_again(fake, tmp_path, capsys):
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 0
    fake.ran.clear()
    resume = ["--resume", "--run-dir", str(run), "--models", "custom_cnn,mobilenetv2"]
    fake.stop_at = "05_evaluate.mobilenetv2"
    assert runner.main(resume) == 130
    # the summary read the models before this one was trained: no longer done
    assert statuses(run)["06_summary"] == "outdated"
    assert statuses(run)["05_evaluate.custom_cnn"] == "ok"  # another model's: untouched
    fake.stop_at = ""
    capsys.readouterr()
    assert runner.main(resume) == 0
    assert fake.ran == ["04_train.mobilenetv2", "05_evaluate.mobilenetv2", "06_summary"]
    out = capsys.readouterr().out
    assert "06_summary: runs again: an earlier stage ran after it had finished" in out
    assert "05_evaluate.custom_cnn: already done, skipped" in out
    fake.ran.clear()
    run2 = tmp_path / "run2"
    assert runner.main([*fake.argv, "--run-dir", str(run2)]) == 0
    fake.ran.clear()
    assert runner.main(["--resume", "--run-dir", str(run2), "--models", "custom_cnn,vgg16"]) == 0
    assert fake.ran == ["04_train.vgg16", "05_evaluate.vgg16", "06_summary"]
    assert "06_summary: runs again: an earlier stage ran in this resume" in capsys.readouterr().out
    assert set(statuses(run2).values()) == {"ok"}


def test_only_with_resume_runs_the_stages_it_names_again(fake, tmp_path, capsys):
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 0
    fake.ran.clear()
    assert runner.main(["--only", "04", "--run-dir", str(run)]) == 2
    assert "add --resume to run the --only 04 stages again in it" in capsys.readouterr().err
    assert runner.main(["--only", "04", "--run-dir", str(run), "--resume"]) == 0
    assert fake.ran == ["04_train.custom_cnn"]
    out = capsys.readouterr().out
    assert "04_train.custom_cnn: runs again (--only names it)" in out
    assert "out of date, as stages before them ran again: 05_evaluate.custom_cnn, 06_summary" in (
        out
    )
    fake.ran.clear()
    assert runner.main(["--resume", "--run-dir", str(run)]) == 0
    assert fake.ran == ["05_evaluate.custom_cnn", "06_summary"]


def test_only_with_resume_trains_a_finished_model_again_and_an_interrupted_one_goes_on(
    fake, tmp_path
):
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 0
    only = ["--only", "04,05", "--run-dir", str(run), "--resume"]
    assert runner.main(only) == 0
    # finished: notebook 04 starts over instead of giving back the model it made
    assert fake.settings["04_train.custom_cnn"] == {"resume": False}
    fake.settings.clear()
    fake.stop_at = "04_train.custom_cnn"
    assert runner.main(only) == 130
    fake.stop_at = ""
    assert runner.main(["--resume", "--run-dir", str(run)]) == 0
    # interrupted: its training goes on from the last checkpoint (the notebook's own default)
    assert "resume" not in fake.settings["04_train.custom_cnn"]
    fake.settings.clear()
    assert runner.main([*fake.argv, "--run-dir", str(tmp_path / "new")]) == 0
    assert "resume" not in fake.settings["04_train.custom_cnn"]  # a first run: nothing to redo


def test_only_without_01_on_a_new_run_is_refused_before_any_stage(fake, tmp_path, capsys):
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--only", "04,05", "--run-dir", str(run)]) == 2
    assert "a new run has no records yet: --only must include 01" in capsys.readouterr().err
    assert fake.ran == [] and not run.exists()


def test_a_stopped_only_run_goes_on_with_its_stages_alone(fake, tmp_path, capsys):
    run = tmp_path / "run"
    fake.stop_at = "04_train.custom_cnn"
    assert runner.main([*fake.argv, "--only", "01,04", "--run-dir", str(run)]) == 130
    hint = f"resume with: ./run_all.sh --resume --run-dir {run}  # the --only 01,04 stages left"
    assert hint in capsys.readouterr().err
    fake.stop_at, fake.ran[:] = "", []
    assert runner.main(["--resume", "--run-dir", str(run)]) == 0
    assert fake.ran == ["04_train.custom_cnn"]  # not 05 and 06, which the command left out
    assert "going on with the --only 01,04 stages" in capsys.readouterr().out
    fake.ran.clear()
    assert runner.main(["--resume", "--run-dir", str(run)]) == 0  # that done: every stage
    assert fake.ran == ["05_evaluate.custom_cnn", "06_summary"]


def test_the_printed_commands_and_paths_paste_back_whole(fake, tmp_path, capsys):
    run = tmp_path / "odd run ü"
    fake.stop_at = "04_train.custom_cnn"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 130
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "resume with: " in line]
    pasted = shlex.split(line.split("resume with: ", 1)[1])
    assert pasted == ["./run_all.sh", "--resume", "--run-dir", str(run)]
    stage = runner.Stage(tmp_path / "02_eda.ipynb")
    text = runner.describe_failure(stage, run / "executed nb.ipynb", Exception("bad"))
    assert shlex.split(text.split(" is ")[-1]) == [str(run / "executed nb.ipynb")]


def test_a_stopped_series_prints_its_own_command_alone(fake, tmp_path, capsys):
    base = tmp_path / "seeds"
    fake.stop_at = "04_train.custom_cnn"
    argv = [*fake.argv, "--seeds", "0,1", "--run-dir", str(base)]
    assert runner.main(argv) == 130
    err = capsys.readouterr().err
    assert "resume with" not in err and err.count("./run_all.sh") == 1
    assert f"seed 0 stopped; go on with: ./run_all.sh {' '.join(argv)} --resume" in err


def test_a_series_member_refused_as_in_use_shows_the_refusal_alone(tmp_path, monkeypatch, capsys):
    base = tmp_path / "folds"
    (base / "fold-1").mkdir(parents=True)
    (base / "fold-1" / "manifest.json").write_text("{}")  # started, running elsewhere

    def in_use(argv, rerun=False):
        print(f"error: {argv[argv.index('--run-dir') + 1]} is in use by another run_all.sh")
        return 2

    monkeypatch.setattr(runner, "run_one", in_use)
    assert runner.main(["--folds", "3", "--run-dir", str(base), "--resume"]) == 2
    printed = capsys.readouterr()
    assert "is in use by another run_all.sh" in printed.out
    assert "stopped" not in printed.err and "go on with" not in printed.err
    assert (base / "fold-1" / "manifest.json").exists()


def test_sigterm_stops_a_run_as_ctrl_c_does(fake, tmp_path, monkeypatch, capsys):
    import os
    import signal
    import time

    def killed(stage, *a, **kw):
        if stage.name == "04_train.custom_cnn":
            os.kill(os.getpid(), signal.SIGTERM)  # `kill <pid>`, or `timeout` running out
            time.sleep(5)  # the handler ends this at once
        fake.ran.append(stage.name)

    monkeypatch.setattr(runner, "execute_stage", killed)
    before = signal.getsignal(signal.SIGTERM)
    run = tmp_path / "run"
    t0 = time.monotonic()
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 143
    assert time.monotonic() - t0 < 4 and signal.getsignal(signal.SIGTERM) is before
    err = capsys.readouterr().err
    assert "stopped by SIGTERM during 04_train.custom_cnn" in err
    assert f"resume with: ./run_all.sh --resume --run-dir {run}" in err
    assert statuses(run) == {"01_extract": "ok", "04_train.custom_cnn": "interrupted"}


def test_sighup_stops_a_run_as_sigterm_does(fake, tmp_path, monkeypatch, capsys):
    import os
    import signal
    import time

    def hung_up(stage, *a, **kw):
        if stage.name == "04_train.custom_cnn":
            os.kill(os.getpid(), signal.SIGHUP)  # the terminal closed, the ssh connection dropped
            time.sleep(5)  # the handler ends this at once
        fake.ran.append(stage.name)

    monkeypatch.setattr(runner, "execute_stage", hung_up)
    # as a terminal's shell starts it: the tests themselves may run under nohup (SIGHUP ignored)
    inherited = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        run = tmp_path / "run"
        assert runner.main([*fake.argv, "--run-dir", str(run)]) == 129
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, inherited)
    err = capsys.readouterr().err
    assert "stopped by SIGHUP (the terminal closed) during 04_train.custom_cnn" in err
    assert f"resume with: ./run_all.sh --resume --run-dir {run}" in err
    assert statuses(run) == {"01_extract": "ok", "04_train.custom_cnn": "interrupted"}


def test_a_run_under_nohup_leaves_sighup_ignored(fake, tmp_path, monkeypatch):
    import signal

    seen = []
    monkeypatch.setattr(runner, "execute_stage", lambda *a, **kw: seen.append(
        signal.getsignal(signal.SIGHUP)))  # fmt: skip
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert runner.main([*fake.argv, "--run-dir", str(tmp_path / "run")]) == 0
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert seen and all(handler is signal.SIG_IGN for handler in seen)


def test_the_printed_resume_command_runs_from_the_folder_it_was_started_in(
    fake, tmp_path, monkeypatch, capsys
):
    root = paths.REPO_ROOT.resolve()
    assert runner.run_all_command(["--resume"], cwd=root) == "./run_all.sh --resume"
    above = runner.run_all_command(["-h"], cwd=root.parent)
    assert shlex.split(above) == [f"{root.name}/run_all.sh", "-h"]
    elsewhere = tmp_path / "other folder"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    fake.stop_at = "04_train.custom_cnn"
    run = tmp_path / "run é"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 130
    (line,) = [line for line in capsys.readouterr().err.splitlines() if "resume with: " in line]
    pasted = shlex.split(line.split("resume with: ", 1)[1])
    assert pasted == [str(root / "run_all.sh"), "--resume", "--run-dir", str(run)]


def test_a_full_disk_in_a_stage_names_the_stage_the_cause_and_the_folder(
    fake, tmp_path, monkeypatch, capsys
):
    import errno
    import os

    def full(stage, run_dir, *a, **kw):
        if stage.name == "04_train.custom_cnn":
            target = run_dir / "notebooks" / f"{stage.name}.ipynb"
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        fake.ran.append(stage.name)
        return run_dir / "notebooks" / f"{stage.name}.ipynb"

    monkeypatch.setattr(runner, "execute_stage", full)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 1
    printed = capsys.readouterr()
    err = printed.err.splitlines()
    assert err[0] == f"error: 04_train.custom_cnn failed: no space left on device in {run}"
    assert err[1] == f"[run_all] resume with: ./run_all.sh --resume --run-dir {run}"
    assert len(err) == 2 and printed.out.splitlines()[-1] != str(run)  # no result to point at
    assert statuses(run) == {"01_extract": "ok", "04_train.custom_cnn": "failed"}


def test_data_that_may_not_be_read_is_named_with_its_error_not_called_unwritable(
    fake, tmp_path, monkeypatch, capsys
):
    import errno
    import os

    data = tmp_path / "other" / "affectnet.zip"

    def unreadable(path):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(data))

    monkeypatch.setattr(runner.paths, "data_fingerprint", unreadable)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"error: {data}: Permission denied" in err and "cannot write" not in err


def test_a_stage_refused_a_read_fails_as_the_stage_and_a_refused_write_names_the_folder(
    fake, tmp_path, monkeypatch, capsys
):
    import errno
    import os

    refused = [tmp_path / "other" / "faces.zip"]

    def denied(stage, run_dir, *a, **kw):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(refused[0]))

    monkeypatch.setattr(runner, "execute_stage", denied)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 1
    err = capsys.readouterr().err
    assert "Stage 01_extract failed in a cell: PermissionError" in err
    assert "permission denied in" not in err
    refused[0] = run / "records.parquet"
    assert runner.main([*fake.argv, "--resume", "--run-dir", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: 01_extract failed: permission denied in {run}\n")


def test_a_kernel_that_cannot_start_is_the_stages_failure_not_the_folders(
    fake, tmp_path, monkeypatch, capsys
):
    import errno
    import os

    def gone(stage, *a, **kw):  # the kernel's python no longer there
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "/gone/bin/python")

    monkeypatch.setattr(runner, "execute_stage", gone)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 1
    err = capsys.readouterr().err
    assert "Stage 01_extract failed in a cell: FileNotFoundError" in err and "/gone/bin" in err
    assert "error:" not in err and statuses(run) == {"01_extract": "failed"}


def test_a_run_folder_that_cannot_be_written_is_named_and_not_printed_as_a_result(
    fake, tmp_path, monkeypatch, capsys
):
    import errno
    import os

    from helpers.core.errors import DataError

    def read_only(path, payload):
        cause = OSError(errno.EROFS, os.strerror(errno.EROFS), str(path.with_name(".x.tmp")))
        raise DataError(path, cause.strerror) from cause

    monkeypatch.setattr(runner, "write_json", read_only)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 1
    printed = capsys.readouterr()
    assert printed.err == f"error: cannot write to the run folder {run} (Read-only file system)\n"
    assert str(run) not in printed.out


def test_an_html_copy_that_cannot_be_written_whole_leaves_no_half_file(tmp_path, monkeypatch):
    import errno
    import os

    import nbformat

    from helpers.core import jsonio

    executed = tmp_path / "02_eda.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("x")]), executed)

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(jsonio.os, "replace", full)
    with pytest.raises(Exception, match="No space left on device"):
        runner.export_html(executed, tmp_path / "html")
    assert list((tmp_path / "html").iterdir()) == []


def test_a_finished_run_ends_with_what_to_open_then_its_folder(fake, tmp_path, monkeypatch, capsys):
    _notebook(runner.paths.NOTEBOOKS_DIR / "07_predict.ipynb", "run_dir = ''")

    def execute(stage, run_dir, *a, **kw):
        if stage.name == "06_summary":
            (run_dir / "report.html").write_text("<html></html>")
        if stage.name == "07_predict":
            (run_dir / "annotated").mkdir()
        return run_dir / "notebooks" / f"{stage.name}.ipynb"

    monkeypatch.setattr(runner, "execute_stage", execute)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 0
    last = capsys.readouterr().out.splitlines()[-4:]
    assert last[0].startswith("[run_all] profile smoke trains one epoch (on data.zip here)")
    assert "a model that learned nothing is expected" in last[0]
    assert "demo" not in last[0]  # the run read the user's data.zip, not the demo set
    assert last[1:] == [
        f"[run_all] report: {run / 'report.html'}",
        f"[run_all] the predictor's output: {run / 'annotated'}",
        str(run),
    ]
    again = tmp_path / "six epochs"
    assert runner.main([*fake.argv, "--run-dir", str(again), "--set", "04:epochs=6"]) == 0
    assert "trains one epoch" not in capsys.readouterr().out


def test_the_demo_data_is_announced_in_one_line(fake, tmp_path, monkeypatch, capsys):
    import zipfile

    from helpers.core.progress import bar
    from helpers.data import synthetic

    def generate(path, n, seed, size, progress=True):
        for _ in bar(range(3), desc="demo faces", disable=not progress):
            pass
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("a.txt", "a")

    monkeypatch.setattr(synthetic, "generate_zip", generate)
    monkeypatch.setattr(runner.config, "demo_zip_path", lambda *a: tmp_path / "demo" / "d.zip")
    run = tmp_path / "run"
    assert runner.main(["--profile", "smoke", "--models", "custom_cnn", "--run-dir", str(run)]) == 0
    printed = capsys.readouterr()
    assert "demo faces" not in printed.err and "\r" not in printed.err
    out = printed.out.splitlines()
    assert out[0] == f"[run_all] {runner.CHECKING}"  # before TensorFlow loads, not silence
    assert out[1].startswith("[run_all] generating the demo dataset for profile smoke")
    assert out[2] == f"[run_all] run folder: {run}"


def test_a_resume_takes_the_data_moved_elsewhere_by_its_sha256(fake, tmp_path, capsys):
    data = tmp_path / "data.zip"
    run = tmp_path / "run"
    fake.stop_at = "04_train.custom_cnn"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 130
    moved = data.rename(tmp_path / "moved.zip")
    other = tmp_path / "other.zip"
    other.write_bytes(b"other bytes")
    fake.stop_at = ""
    capsys.readouterr()
    assert runner.main(["--resume", "--run-dir", str(run)]) == 2
    sha = paths.data_fingerprint(moved)
    assert f"which no longer exists; give --data naming a copy of it (sha256 {sha})" in (
        capsys.readouterr().err
    )
    assert runner.main(["--resume", "--run-dir", str(run), "--data", str(other)]) == 2
    err = capsys.readouterr().err
    assert f"(sha256 {sha}); --data {other} has sha256 {paths.data_fingerprint(other)}" in err
    assert runner.main(["--resume", "--run-dir", str(run), "--data", str(moved)]) == 0
    assert f"--data {moved} has the sha256 of {data}" in capsys.readouterr().out
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["data"]["path"] == str(moved) and set(statuses(run).values()) == {"ok"}


def test_set_values_are_checked_before_any_stage(fake, tmp_path, capsys):
    run = tmp_path / "run"
    for setting, says in (
        ("tta=flipp", "--set for 05_evaluate.custom_cnn: tta must be one of"),
        ("04:optimizer=adamm", "--set for 04_train.custom_cnn: TrainConfig.optimizer must be"),
        ("04:epochs=0", "TrainConfig.epochs must be an integer >= 1"),
    ):
        assert runner.main([*fake.argv, "--run-dir", str(run), "--set", setting]) == 2
        assert says in capsys.readouterr().err, setting
    assert fake.ran == [] and not run.exists()
    assert runner.main([*fake.argv, "--run-dir", str(run), "--set", "tta=flip"]) == 0


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("tta=1.5", "--set for 05_evaluate.custom_cnn: parameter tta=1.5 should be str"),
        ("augment={'noise_pp': 0.3}", "--set for 03_augment: AugmentConfig: unknown field"),
        ("04:backbone_options={'widthz': 3}", "--set for 04_train.custom_cnn: "),
    ],
)
def test_set_values_of_the_stages_only_leaves_out_are_checked_before_any_work(
    setting, says, tmp_path, monkeypatch, capsys
):
    """--only 01 runs 01 now and the rest on a --resume: a value that would stop them there is
    refused before 01 runs, as in a run of every stage (the notebooks as committed)."""
    data = tmp_path / "data.zip"
    data.write_bytes(b"PK")
    monkeypatch.setattr(runner, "execute_stage", lambda *a, **k: pytest.fail("a stage ran"))
    run = tmp_path / "run"
    argv = ["--profile", "smoke", "--data", str(data), "--models", "custom_cnn"]
    assert runner.main([*argv, "--run-dir", str(run), "--only", "01", "--set", setting]) == 2
    assert says in capsys.readouterr().err
    assert not run.exists()


def test_the_notebooks_own_checks_are_those_run_up_front():
    from helpers.core import paths
    from helpers.core.errors import ConfigError
    from helpers.run import values

    stems = {nb.stem for nb in paths.NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")}
    assert set(values.CHECKS) <= stems
    for notebook, given, says in (
        ("03_augment", {"augment_mode": "sometimes"}, "augment_mode must be one of"),
        ("03_augment", {"balance": "evenly"}, "balance strategy must be one of"),
        ("03_augment", {"augment": {"hflip": 0.5}}, "unknown field"),
        ("03_augment", {"val_share": "0.1"}, "parameter val_share='0.1' should be float"),
        ("05_evaluate", {"export_tflite": "yes"}, "should be bool"),
        ("04_train", {"weights": "no/such.keras"}, "weights file 'no/such.keras' does not exist"),
        ("04_train", {"weights": 5}, r"TrainConfig.weights must be None, 'imagenet' or a weights"),
        ("04_train", {"weights": True}, r"TrainConfig.weights must be None, 'imagenet' or a"),
        ("04_train", {"weights_fallback": 1}, r"TrainConfig.weights_fallback must be one of"),
    ):
        with pytest.raises(ConfigError, match=says):
            values.check_values("smoke", notebook, None, given)
    # a weights path is read from the notebooks' folder, as the kernel reads it
    values.check_values("smoke", "04_train", None, {"weights": "04_train.ipynb"})
    values.check_values("smoke", "04_train", None, {"weights": "imagenet"})
    values.check_values("smoke", "03_augment", None, {"augment": {"hflip_p": 0.0}})


def test_a_weights_value_that_is_no_path_is_refused_as_the_builder_refuses_it():
    from helpers.core.errors import ConfigError
    from helpers.models import factory

    for value in (5, True, 1.5, ["a.keras"]):
        with pytest.raises(ConfigError, match=r"custom_cnn weights: expected a weights file's pa"):
            factory.check_weights_path(value, "custom_cnn weights")
    with pytest.raises(ConfigError, match=r"weights_fallback \(or one of .*got 1"):
        factory.check_fallback(1, "custom_cnn")


def test_the_profile_parameters_of_a_notebook_are_read_from_it_once(monkeypatch):
    import papermill

    from helpers.run import values

    values._profile_parameters.cache_clear()  # read by a test before
    inspected = []
    inspect = papermill.inspect_notebook
    monkeypatch.setattr(papermill, "inspect_notebook", lambda p: inspected.append(p) or inspect(p))
    for model in ("custom_cnn", "mobilenetv2"):  # one 05 stage per model
        values.check_values("smoke", "05_evaluate", model, {"tta": "flip"})
    assert len(inspected) == 1


def test_a_resume_takes_new_set_values_for_the_stages_not_yet_done(fake, tmp_path, capsys):
    run = tmp_path / "run"
    fake.stop_at = "05_evaluate.custom_cnn"  # as a bad value would stop it
    argv = [*fake.argv, "--run-dir", str(run), "--set", "tta=none", "--set", "04:epochs=2"]
    assert runner.main(argv) == 130
    fake.stop_at = ""
    resume = ["--resume", "--run-dir", str(run)]
    assert runner.main([*resume, "--set", "04:epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "started with --set 04:epochs=2, and 04_train.custom_cnn finished with it" in err
    assert runner.main([*resume, "--set", "tta=flip"]) == 0
    assert "--set tta='flip' in place of tta='none'" in capsys.readouterr().out
    assert fake.settings["05_evaluate.custom_cnn"] == {"tta": "flip"}
    recorded = json.loads((run / "manifest.json").read_text())["parameters"]
    assert recorded == {"tta": "flip", "04:epochs": 2}


def test_a_mistyped_set_name_on_a_resume_is_refused_before_any_value_is_taken(
    fake, tmp_path, capsys
):
    run = tmp_path / "run"
    fake.stop_at = "05_evaluate.custom_cnn"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 130
    capsys.readouterr()
    resume = ["--resume", "--run-dir", str(run)]
    assert runner.main([*resume, "--set", "optimiser=adam"]) == 2
    printed = capsys.readouterr()
    assert "not a parameter of any notebook; did you mean optimizer?" in printed.err
    assert "--set" not in printed.out  # nothing said about taking it
    assert json.loads((run / "manifest.json").read_text())["parameters"] == {}
    fake.stop_at = ""
    assert runner.main([*resume, "--set", "tta=flip"]) == 0
    out = capsys.readouterr().out
    assert "--set tta='flip' (new), for the stages not yet done" in out
    assert "in place of" not in out


def test_the_line_a_stage_starts_with_names_the_stage_it_is_given(tmp_path):
    args = SimpleNamespace(rerun={"04_train.custom_cnn"})
    stage = runner.Stage(tmp_path / "04_train.ipynb", "custom_cnn")
    head = "[run_all] [2/4] training custom_cnn"  # whatever the head's last word
    assert runner.announce_stage(args, stage, head, "ok", set()) == (
        f"{head}: runs again (--only names it)"
    )
    assert runner.announce_stage(args, stage, head, "outdated", {stage.name}).endswith(
        "an earlier stage ran in this resume"
    )


def test_sigterm_between_stages_stops_the_run_as_in_a_stage(fake, tmp_path, monkeypatch, capsys):
    import os
    import signal

    marked = runner.mark_outdated

    def killed_before_04(manifest, plan, ran):  # outside the stage's own try
        if ran.name == "04_train.custom_cnn":
            os.kill(os.getpid(), signal.SIGTERM)
        return marked(manifest, plan, ran)

    monkeypatch.setattr(runner, "mark_outdated", killed_before_04)
    before = signal.getsignal(signal.SIGTERM)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 143
    assert signal.getsignal(signal.SIGTERM) is before
    printed = capsys.readouterr()
    assert "[run_all] stopped by SIGTERM\n" in printed.err
    assert f"resume with: ./run_all.sh --resume --run-dir {run}" in printed.err
    assert printed.out.splitlines()[-1] == str(run)
    assert statuses(run) == {"01_extract": "ok"}  # the stage that had finished is not interrupted
    monkeypatch.setattr(runner, "mark_outdated", marked)
    fake.ran.clear()
    assert runner.main(["--resume", "--run-dir", str(run)]) == 0
    assert fake.ran == ["04_train.custom_cnn", "05_evaluate.custom_cnn", "06_summary"]


def test_a_second_signal_while_a_stop_is_recorded_is_ignored(fake, tmp_path, monkeypatch, capsys):
    import os
    import signal

    write = runner.write_json

    def killed_again(path, manifest):  # the impatient second kill, as the stop is written
        if "interrupted" in json.dumps(manifest.get("stages", {})):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        return write(path, manifest)

    monkeypatch.setattr(runner, "write_json", killed_again)
    fake.stop_at = "04_train.custom_cnn"
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 130
    assert "interrupted during 04_train.custom_cnn" in capsys.readouterr().err
    assert statuses(run)["04_train.custom_cnn"] == "interrupted"


def test_a_resume_checks_its_options_before_hashing_the_data_and_hashes_it_once(
    fake, tmp_path, monkeypatch, capsys
):
    import fcntl
    import os

    data, run = tmp_path / "data.zip", tmp_path / "run"
    fake.stop_at = "04_train.custom_cnn"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 130
    moved = data.rename(tmp_path / "moved.zip")
    hashed = []
    fingerprint = runner.paths.data_fingerprint
    monkeypatch.setattr(
        runner.paths, "data_fingerprint", lambda p: hashed.append(p) or fingerprint(p)
    )
    capsys.readouterr()
    resume = ["--resume", "--run-dir", str(run), "--data", str(moved)]
    for refused, says in (
        (["--set", "tta=flipp"], "tta must be one of"),
        (["--set", "tt=flip"], "did you mean tta?"),
        (["--only", "09"], "no notebook starts with 09"),
    ):
        assert runner.main([*resume, *refused]) == 2
        printed = capsys.readouterr()
        assert says in printed.err and "goes on with it" not in printed.out
        assert "--set" not in printed.out  # nothing said about a value the run did not take
        assert hashed == []  # refused at once, the data not read
    held = os.open(run, os.O_RDONLY)  # a run_all.sh on this folder already
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert runner.main([*resume, "--set", "tta=flipp"]) == 2
        assert "is in use by another run_all.sh" in capsys.readouterr().err
    finally:
        os.close(held)
    fake.stop_at = ""
    assert runner.main(resume) == 0
    assert hashed == [moved]
    assert f"--data {moved} has the sha256 of {data}" in capsys.readouterr().out


def test_a_series_goes_on_with_a_stopped_only_and_resume_only_runs_stages_again(
    fake, tmp_path, capsys
):
    base = tmp_path / "seeds"
    argv = [*fake.argv, "--seeds", "0,1", "--run-dir", str(base), "--only", "01,04"]
    fake.stop_at = "04_train.custom_cnn"  # in seed 0's run
    assert runner.main(argv) == 130
    fake.stop_at, fake.ran[:] = "", []
    assert runner.main([*argv, "--resume"]) == 0  # the command the stop printed: goes on
    assert fake.ran == ["04_train.custom_cnn", "01_extract", "04_train.custom_cnn"]
    assert "run again" not in capsys.readouterr().out
    fake.ran.clear()
    again = [*fake.argv, "--seeds", "0,1", "--run-dir", str(base), "--resume", "--only", "04"]
    assert runner.main(again) == 0  # as on one run: the stages it names run again
    assert fake.ran == ["04_train.custom_cnn"] * 2
    out = capsys.readouterr().out
    assert "the --only 04 stages run again in every run of the series" in out
    assert out.count("04_train.custom_cnn: runs again (--only names it)") == 2


def test_the_profile_parameters_checked_up_front_are_those_the_notebooks_resolve():
    """A parameter a notebook gives profiles.resolve is checked by run_all.sh without a list of
    its own to keep in step: the list is read from the notebook."""
    import ast

    import nbformat

    from helpers.run import values

    for notebook in ("03_augment", "05_evaluate"):
        cells = nbformat.read(paths.NOTEBOOKS_DIR / f"{notebook}.ipynb", as_version=4).cells
        code = "\n".join(c.source for c in cells if c.cell_type == "code")
        resolved = {
            keyword.arg
            for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "profiles.resolve"
            for keyword in node.keywords
        }
        assert set(values.profile_parameters(notebook)) == resolved, notebook


def test_a_stopped_series_rerun_runs_the_stages_again_in_the_runs_it_had_not_reached(
    fake, tmp_path, capsys
):
    base = tmp_path / "seeds"
    argv = [*fake.argv, "--seeds", "0,1,2", "--run-dir", str(base)]
    assert runner.main(argv) == 1  # finished (the stand-ins leave no metrics to sum up)
    again = [*argv, "--resume", "--only", "04"]
    assert runner.main([*again, "--set", "04:optimizer=adamm"]) == 2  # refused: nothing marked
    assert all(set(statuses(base / f"seed-{n}").values()) == {"ok"} for n in range(3))
    fake.stop_at, fake.ran[:] = "04_train.custom_cnn", []
    assert runner.main(again) == 130  # stopped in seed 0's rerun of 04
    printed = capsys.readouterr().err.partition("go on with: ./run_all.sh ")[2].splitlines()[0]
    fake.stop_at = ""
    assert runner.main(shlex.split(printed)) == 0  # the command the stop printed
    assert fake.ran == ["04_train.custom_cnn"] * 3  # seeds 1 and 2 rerun it too
    assert capsys.readouterr().out.count("04_train.custom_cnn: runs again (--only names it)") == 2
    for n in range(3):
        assert statuses(base / f"seed-{n}") == {
            "01_extract": "ok",
            "04_train.custom_cnn": "ok",
            "05_evaluate.custom_cnn": "outdated",
            "06_summary": "outdated",
        }


def test_a_run_checked_before_any_work_stops_on_ctrl_c_or_sigterm_without_a_traceback(
    fake, tmp_path, monkeypatch, capsys
):
    import fcntl
    import os
    import signal
    import time

    data, run = tmp_path / "data.zip", tmp_path / "run"
    fake.stop_at = "04_train.custom_cnn"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 130
    moved = data.rename(tmp_path / "moved.zip")
    before = json.loads((run / "manifest.json").read_text())
    capsys.readouterr()

    def ctrl_c(path):  # a multi-GB zip being hashed
        raise KeyboardInterrupt

    def killed(path):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler ends this at once

    resume = ["--resume", "--run-dir", str(run), "--data", str(moved), "--set", "tta=flip"]
    for hashing, status, says in (
        (ctrl_c, 130, "interrupted"),
        (killed, 143, "stopped by SIGTERM"),
    ):
        monkeypatch.setattr(runner.paths, "data_fingerprint", hashing)
        assert runner.main(resume) == status
        printed = capsys.readouterr()
        assert printed.err == f"[run_all] {says} before any work\n"  # no resume hint
        assert "--set" not in printed.out
        assert json.loads((run / "manifest.json").read_text()) == before
        held = os.open(run, os.O_RDONLY)  # the lock was released
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(held)


def test_a_runs_set_names_are_checked_once(fake, tmp_path, monkeypatch):
    checked = []
    check = runner.check_settings
    monkeypatch.setattr(
        runner,
        "check_settings",
        lambda given, stages: checked.append(given) or check(given, stages),
    )
    assert runner.main([*fake.argv, "--run-dir", str(tmp_path / "run"), "--set", "tta=flip"]) == 0
    assert len(checked) == 1


def test_a_series_reads_its_runs_manifests_as_a_resume_does(tmp_path, monkeypatch):
    base = tmp_path / "seeds"
    (base / "seed-0").mkdir(parents=True)
    (base / "seed-0" / "manifest.json").write_text('{"only": "04"}')  # damaged: no profile
    read = []
    reader = runner.read_manifest
    monkeypatch.setattr(runner, "read_manifest", lambda run: read.append(run) or reader(run))
    args = SimpleNamespace(resume=True, only="04")
    series = runner.seed_series([0, 1])
    assert runner.series_reruns(args, series, base) is True  # its own run refuses it
    assert read == [base / "seed-0"]


def test_the_manifest_names_the_command_that_repeats_the_run_as_a_resume_left_it(
    fake, tmp_path, capsys
):
    """A resume that adds a model and replaces a --set value keeps the first command, adds its
    own to `resumed`, and `repeat_command` makes the run as it stands: run again, its manifest
    holds the same models and values."""
    run = tmp_path / "run"
    fake.stop_at = "05_evaluate.custom_cnn"  # as a bad value would stop it
    first = [*fake.argv, "--run-dir", str(run), "--set", "tta=none", "--set", "04:epochs=2"]
    assert runner.main(first) == 130
    fake.stop_at = ""
    resume = ["--resume", "--run-dir", str(run), "--models", "custom_cnn,mobilenetv2"]
    assert runner.main([*resume, "--set", "tta=flip"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["command"] == shlex.join(["./run_all.sh", *first])
    assert manifest["resumed"] == [shlex.join(["./run_all.sh", *resume, "--set", "tta=flip"])]
    words = shlex.split(manifest["repeat_command"])
    assert words[0] == "./run_all.sh" and words[-2:] == ["--run-dir", str(run)]
    again = tmp_path / "again"
    assert runner.main([*words[1:-2], "--run-dir", str(again)]) == 0
    repeated = json.loads((again / "manifest.json").read_text())
    for key in ("profile", "seed", "models", "data", "parameters", "test_data"):
        assert repeated[key] == manifest[key], key
    assert repeated["models"] == ["custom_cnn", "mobilenetv2"]
    assert repeated["parameters"] == {"tta": "flip", "04:epochs": 2}


def test_a_set_value_in_the_repeat_command_reads_back_as_the_value_recorded():
    for key, value in (
        ("tta", "flip"),
        ("use_model", "1_2"),
        ("tta", "1.5"),
        ("learning_rate", 0.002),
        ("augment", {"noise_p": 0.3}),
        ("x", None),
        ("x", "it's"),
    ):
        assert runner.parse_setting(f"{key}={runner.setting_text(key, value)}").value == value


def test_the_methods_section_states_the_command_that_repeats_the_run(tmp_path):
    from helpers.reporting.methods import methods
    from test_methods import _run

    run = _run(tmp_path)
    manifest = json.loads(run.manifest.read_text())
    manifest["repeat_command"] = manifest["command"] + " --models custom_cnn,vgg16"
    run.manifest.write_text(json.dumps(manifest))
    text = methods(run).text
    assert "--data fer2013.zip --models custom_cnn,vgg16`" in text


def test_the_one_epoch_note_names_the_demo_set_only_when_the_run_read_it(tmp_path):
    args = SimpleNamespace(settings=[])
    smoke = runner.config.get_profile("smoke")
    for data, says in (
        ({"path": "/data/demo/affectnet_demo.zip", "demo": True}, "on the generated demo set here"),
        ({"path": "/home/me/faces.zip", "demo": False}, "on faces.zip here"),
    ):
        manifest = {"stages": {}, "data": data}
        trained = [runner.Stage(tmp_path / "04_train.ipynb", "custom_cnn")]
        note = runner.closing_lines(args, tmp_path, manifest, smoke, trained)[1]
        assert f"profile smoke trains one epoch ({says})" in note, note


def test_an_only_run_that_trained_no_model_ends_with_the_stages_left_not_the_one_epoch_note(
    fake, tmp_path, capsys
):
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--only", "01", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"[run_all] 1 stage finished; HTML in {run / 'html'}" in out
    assert not any("trains one epoch" in line for line in out)  # no model trained
    left = "04_train.custom_cnn, 05_evaluate.custom_cnn, 06_summary"
    command = f"./run_all.sh --resume --run-dir {run}"
    assert f"[run_all] 3 stages of the run not run yet ({left}); {command} runs them" in out
    assert out[-1] == str(run)
    assert runner.main(shlex.split(command)[1:]) == 0  # the command printed runs them
    assert fake.ran == ["01_extract", "04_train.custom_cnn", "05_evaluate.custom_cnn", "06_summary"]
    out = capsys.readouterr().out.splitlines()
    assert f"[run_all] all 4 stages finished; HTML in {run / 'html'}" in out
    assert not any("not run yet" in line for line in out)
    assert any("trains one epoch" in line for line in out)


def test_a_failed_cells_traceback_is_written_to_the_stages_log_as_plain_text(
    fake, tmp_path, monkeypatch, capsys
):
    from papermill.exceptions import PapermillExecutionError

    frames = [
        "\x1b[31m---------------------------------------------------------------------------\x1b[39m",
        "\x1b[31mValueError\x1b[39m            Traceback (most recent call last)",
        "Cell \x1b[32mIn[5]\x1b[39m, line 1\n\x1b[32m----> 1\x1b[39m check(records)",
        "\x1b[31mValueError\x1b[39m: no faces in the data",
    ]

    def failing(stage, run_dir, *a, **kw):
        if stage.name == "04_train.custom_cnn":
            raise PapermillExecutionError(3, 5, "check(records)", "ValueError", "no faces", frames)
        return run_dir / "notebooks" / f"{stage.name}.ipynb"

    monkeypatch.setattr(runner, "execute_stage", failing)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 1
    log = run / "logs" / "04_train.custom_cnn.log"
    text = log.read_text()
    assert "\x1b" not in text
    assert text.startswith("The traceback of cell [5]:\n")
    assert "ValueError: no faces in the data" in text and "----> 1 check(records)" in text
    err = capsys.readouterr().err
    assert "Stage 04_train.custom_cnn failed in cell [5]: ValueError: no faces" in err
    assert f"The traceback, as plain text: {log}; the executed notebook: " in err


def test_a_first_stage_that_fails_prints_a_new_run_that_works_not_a_resume(
    fake, tmp_path, monkeypatch, capsys
):
    """01 failing on data it cannot read leaves no records; a resume keeps the run's data and a
    new run may not reuse the folder: the command printed starts a new run, and it runs."""
    from papermill.exceptions import PapermillExecutionError

    unreadable = {"yes": True}

    def extract(stage, run_dir, *a, **kw):
        if stage.name == "01_extract" and unreadable["yes"]:
            raise PapermillExecutionError(4, 5, "read()", "UnrecognisedSource", "empty.zip", [])
        fake.ran.append(stage.name)
        return run_dir / "notebooks" / f"{stage.name}.ipynb"

    monkeypatch.setattr(runner, "execute_stage", extract)
    monkeypatch.setattr(runner.paths, "REPORTS_DIR", tmp_path / "reports")
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--only", "01", "--run-dir", str(run)]) == 1
    err = capsys.readouterr().err
    assert "resume with" not in err
    (line,) = [line for line in err.splitlines() if "start a new one: " in line]
    assert line.startswith("[run_all] 01_extract wrote no records, so there is no run to resume")
    command = shlex.split(line.split("start a new one: ", 1)[1], comments=True)
    assert command[0] == "./run_all.sh" and "--resume" not in command
    assert command[command.index("--only") + 1] == "01"
    unreadable["yes"] = False  # the data mended
    assert runner.main(command[1:]) == 0
    (new,) = (tmp_path / "reports").iterdir()
    assert statuses(new) == {"01_extract": "ok"} and statuses(run) == {"01_extract": "failed"}
    assert capsys.readouterr().out.splitlines()[-1] == str(new)


def test_a_first_stage_that_fails_after_writing_its_records_prints_a_resume(
    fake, tmp_path, monkeypatch, capsys
):
    """01 failing after records.parquet is written (settings.json on a full disk): the run has
    its records, so the advice is a resume, not a new run."""
    from papermill.exceptions import PapermillExecutionError

    def extract(stage, run_dir, *a, **kw):
        runner.RunFolder(run_dir).records.write_bytes(b"records")
        raise PapermillExecutionError(12, 13, "record_data()", "OSError", "disk full", [])

    monkeypatch.setattr(runner, "execute_stage", extract)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--only", "01", "--run-dir", str(run)]) == 1
    err = capsys.readouterr().err
    assert "wrote no records" not in err and "start a new one" not in err
    assert f"resume with: ./run_all.sh --resume --run-dir {run}" in err


def test_a_stop_in_a_cell_ends_with_the_run_folder_not_the_dead_kernels_task(
    fake, tmp_path, monkeypatch, capsys, caplog
):
    """A stop while nbclient waits on a cell leaves that cell's task behind, to fail as the
    kernel dies; asyncio would log it (`Task exception was never retrieved ... DeadKernelError`)
    once the task is collected, after the run folder was printed as the last line."""
    import asyncio
    import gc
    import os
    import signal

    from nbclient.exceptions import DeadKernelError

    def killed_in_a_cell(stage, *a, **kw):
        if stage.name != "05_evaluate.custom_cnn":
            return None

        async def execute_cell():
            raise DeadKernelError("Kernel died")

        loop = asyncio.new_event_loop()
        cell = loop.create_task(execute_cell())
        loop.run_until_complete(asyncio.sleep(0.01))  # the cell's task ends with the dead kernel
        loop.close()
        assert cell.done()
        os.kill(os.getpid(), signal.SIGTERM)  # the stop, with the task left unretrieved
        signal.pause()

    monkeypatch.setattr(runner, "execute_stage", killed_in_a_cell)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 143
    gc.collect()  # as the interpreter does by its exit at the latest
    said = [r for r in caplog.records if r.name == "asyncio"]
    assert not said, [r.getMessage() for r in said]
    assert capsys.readouterr().out.splitlines()[-1] == str(run)


RESULTS_CSV = (  # as notebook 06 writes <run>/results.csv (helpers.reporting.results)
    "model,parameters,tta,expression_accuracy,expression_accuracy_ci_low,"
    "expression_accuracy_ci_high,expression_f1_macro,expression_f1_macro_ci_low,"
    "expression_f1_macro_ci_high,expression_learned,expression_best,landmarks_nme,"
    "landmarks_nme_ci_low,landmarks_nme_ci_high,landmarks_learned,landmarks_best,n_test\n"
    "custom_cnn,1278450,none,0.5123,0.48,0.54,0.4329,0.40,0.46,True,True,0.0831,0.08,0.09,"
    "True,True,320\n"
    "vgg16,14800000,flip,0.065,0.04,0.09,0.015,0.0,0.035,False,False,0.365,0.35,0.38,False,"
    "False,320\n"
)


def test_a_finished_run_closes_with_each_models_figures_and_where_its_table_is(
    fake, tmp_path, monkeypatch, capsys
):
    def execute(stage, run_dir, *a, **kw):
        if stage.name == "06_summary":
            (run_dir / "results.csv").write_text(RESULTS_CSV)
            (run_dir / "report.html").write_text("<html></html>")
        return run_dir / "notebooks" / f"{stage.name}.ipynb"

    monkeypatch.setattr(runner, "execute_stage", execute)
    run = tmp_path / "run"
    assert runner.main([*fake.argv, "--run-dir", str(run)]) == 0
    assert capsys.readouterr().out.splitlines()[-5:] == [
        f"[run_all] results: {run / 'results.csv'}",
        "[run_all]   custom_cnn: accuracy 0.512, macro F1 0.433, landmark NME 0.083; best for "
        "expression, landmarks",
        "[run_all]   vgg16: accuracy 0.065, macro F1 0.015, landmark NME 0.365; learned nothing "
        "for expression, landmarks",
        f"[run_all] report: {run / 'report.html'}",
        str(run),
    ]


def test_the_closing_figures_are_the_headline_columns_of_the_results_table():
    from helpers.reporting.results import COLUMNS
    from helpers.run import recap

    assert [column for column, _ in recap.FIGURES] == [f"{t}_{m}" for t, m, _ in COLUMNS]
