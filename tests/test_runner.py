"""run_all.sh's driver: validation before work, stage planning, no overwrites, clear failures."""

import json
import os
import re
import shlex
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from helpers.core import paths
from helpers.core.errors import ConfigError
from helpers.core.jsonio import write_json
from helpers.run import runner


def _notebook(path, params_src):
    nb = new_notebook()
    cell = new_code_cell(params_src)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, new_code_cell("x = 1")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_notebooks_that_declare_model_run_once_per_model(tmp_path):
    _notebook(tmp_path / "01_a.ipynb", "run_dir = ''")
    _notebook(tmp_path / "04_train.ipynb", "run_dir = ''\nmodel = 'custom_cnn'")
    _notebook(tmp_path / "notes.ipynb", "x = 1")  # not numbered: not a stage
    stages = runner.plan_stages(["custom_cnn", "vgg16"], tmp_path)
    assert [s.name for s in stages] == ["01_a", "04_train.custom_cnn", "04_train.vgg16"]


def test_existing_run_folder_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("precious")
    with pytest.raises(ConfigError, match="already exists"):
        runner.prepare_run_dir(str(run), resume=False)
    assert (run / "keep.txt").read_text() == "precious"


def test_resume_needs_a_run_to_resume(tmp_path):
    with pytest.raises(ConfigError, match="manifest"):
        runner.prepare_run_dir(str(tmp_path), resume=True)
    with pytest.raises(ConfigError, match="--run-dir"):
        runner.prepare_run_dir("", resume=True)


def test_bad_arguments_fail_fast_with_exit_2(tmp_path, capsys):
    assert runner.main(["--profile", "huge", "--run-dir", str(tmp_path / "r")]) == 2
    assert "unknown profile" in capsys.readouterr().err
    assert runner.main(["--models", "alexnet", "--run-dir", str(tmp_path / "r")]) == 2
    assert (
        runner.main(["--data", str(tmp_path / "missing.zip"), "--run-dir", str(tmp_path / "r")])
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    assert runner.main(["--only", "01,09", "--run-dir", str(tmp_path / "r")]) == 2
    assert "no notebook starts with 09; the notebooks are 01_extract, 02_eda" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "r").exists()


def test_a_bad_model_name_is_refused_without_importing_tensorflow(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\nfrom helpers.run import runner\n"
        f"code = runner.main(['--models', 'resnet999', '--run-dir', {str(tmp_path / 'r')!r}])\n"
        "assert code == 2 and 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        "error: --models: unknown model 'resnet999'; valid names: custom_cnn, vgg16, resnet50, "
        "mobilenetv2, efficientnetb0, vggnet; did you mean resnet50?"
    )


def test_a_bad_set_value_is_refused_without_importing_tensorflow(tmp_path):
    """A number out of range is refused before Keras loads (tens of seconds on a busy CPU),
    also before the registry entries are checked in a process that imports it."""
    import subprocess
    import sys

    for setting, said in (
        ("learning_rate=abc", "TrainConfig.learning_rate must be a positive number (got 'abc')"),
        ("04:epochs=-1", "TrainConfig.epochs must be an integer >= 1 (got -1)"),
        ("dropout=1.5", "TrainConfig.dropout must be a number in [0.0, 1.0) (got 1.5)"),
    ):
        code = (
            "import sys\nfrom helpers.run import runner\n"
            "runner.check_entries = lambda *a: sys.exit('the entries were checked first')\n"
            "code = runner.main(['--profile', 'smoke', '--models', 'custom_cnn', '--set', "
            f"{setting!r}, '--run-dir', {str(tmp_path / 'r')!r}])\n"
            "assert code == 2 and 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == f"error: --set for 04_train.custom_cnn: {said}"
        assert not (tmp_path / "r").exists()


def test_the_runner_says_what_it_loads_before_the_notebooks_and_models_are_read(
    tmp_path, capsys, monkeypatch
):
    """Reading the notebooks' parameters imports papermill, checking the models TensorFlow:
    tens of seconds on a busy CPU, so a line says so before either, not after."""

    def plan(models, notebooks_dir=None):
        assert capsys.readouterr().out == f"[run_all] {runner.CHECKING}\n"
        raise runner.ConfigError("planned")

    monkeypatch.setattr(runner, "plan_stages", plan)
    assert runner.main(["--profile", "smoke", "--run-dir", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == "error: planned\n"


def test_failure_message_names_stage_cell_and_error(tmp_path):
    class FakeError(Exception):
        exec_count, ename, evalue = 7, "ValueError", "bad pixels"

    stage = runner.Stage(tmp_path / "02_eda.ipynb")
    text = runner.describe_failure(stage, tmp_path / "out.ipynb", FakeError())
    assert "02_eda" in text and "cell [7]" in text and "ValueError: bad pixels" in text


def test_data_fingerprint_is_stable_and_content_sensitive(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    first = paths.data_fingerprint(f)
    assert first == paths.data_fingerprint(f)
    f.write_bytes(b"abd")
    assert paths.data_fingerprint(f) != first


def test_write_json_is_atomic(tmp_path):
    target = tmp_path / "manifest.json"
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_stage_keeps_kernel_chatter_in_its_log_and_shows_progress_lines(tmp_path, capfd):
    import subprocess
    import sys

    stage = runner.Stage(tmp_path / "04_train.ipynb", "custom_cnn")
    kernel = (  # what a kernel does: library chatter on stderr, progress through the helper
        "import sys\n"
        "print('I0000 port.cc:153] oneDNN custom operations are on.', file=sys.stderr)\n"
        "from helpers.core.progress import line\n"
        "line('custom_cnn epoch 1/2: loss 2.100, 3 s, about 3 s left')\n"
        "line('custom_cnn epoch 2/2: loss 1.900, 3 s')\n"
    )
    with runner.stage_output(tmp_path, stage, quiet=True) as log:
        subprocess.run([sys.executable, "-c", kernel], check=True)
    out, err = capfd.readouterr()
    assert "oneDNN" not in out + err and "oneDNN" in log.read_text()
    assert out.splitlines() == [
        "[run_all]       custom_cnn epoch 1/2: loss 2.100, 3 s, about 3 s left",
        "[run_all]       custom_cnn epoch 2/2: loss 1.900, 3 s",
    ]
    assert log == tmp_path / "logs" / "04_train.custom_cnn.log"


def test_a_stage_log_leaves_out_the_kernels_start_up_notice(tmp_path):
    import subprocess
    import sys

    stage = runner.Stage(tmp_path / "02_eda.ipynb")
    notice = (
        "[IPKernelApp] WARNING | Kernel is running over TCP without encryption. All "
        "communication (including code and outputs) is sent in plain text."
    )
    kernel = f"import sys\nprint({notice!r}, file=sys.stderr)\nprint('own', file=sys.stderr)\n"
    with runner.stage_output(tmp_path, stage, quiet=True) as log:
        subprocess.run([sys.executable, "-c", kernel], check=True)
    assert log.read_text() == "own\n"


def test_a_stage_log_leaves_out_the_interrupt_a_kernel_gets_as_it_is_shut_down(tmp_path):
    """jupyter_client interrupts a kernel before it stops it; one caught between two messages is
    logged as an ERROR that a stage which finished should not show."""
    import subprocess
    import sys

    stage = runner.Stage(tmp_path / "01_extract.ipynb")
    said = "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel."
    kernel = f"import sys\nprint('own', file=sys.stderr)\nprint({said!r}, file=sys.stderr)\n"
    with runner.stage_output(tmp_path, stage, quiet=True) as log:
        subprocess.run([sys.executable, "-c", kernel], check=True)
    assert log.read_text() == "own\n"


def test_a_stage_log_that_cannot_be_written_again_is_left_whole(tmp_path, monkeypatch):
    import errno

    log = tmp_path / "02_eda.log"
    whole = f"{runner.KERNEL_NOTICE} plain text.\nown \udcff\n"
    log.write_text(whole, encoding="utf-8", errors="surrogateescape")
    written = Path.write_text

    def full(self, data, *args, **kwargs):  # a full disk: the file is opened, then nothing fits
        written(self, "", *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", full)
    runner.drop_kernel_notice(log)
    assert log.read_text(encoding="utf-8", errors="surrogateescape") == whole
    assert list(tmp_path.iterdir()) == [log]
    monkeypatch.setattr(Path, "write_text", written)
    runner.drop_kernel_notice(log)
    assert log.read_bytes() == b"own \xff\n"


def test_progress_lines_are_only_written_under_the_runner(tmp_path, monkeypatch):
    from helpers.core import progress

    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    progress.line("nobody reads this")  # no runner: nothing written, nothing raised
    target = tmp_path / "lines"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(target))
    with open(os.devnull, "w") as hidden:
        for _ in progress.bar(range(3), desc="quick", file=hidden):  # seconds: no line
            pass
        assert not target.exists()
        monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)  # as if every step took long
        for _ in progress.bar(range(3), desc="decoding", unit="img", file=hidden, mininterval=0):
            pass
    progress.line("two   spaces\nand a newline")
    lines = target.read_text().splitlines()
    assert lines[0].startswith("decoding: 33% (1/3 img,")
    assert lines[-2].startswith("decoding: 100% (3/3 img,")
    assert sum(line.startswith("decoding: 100%") for line in lines) == 1  # once, not at close too
    assert lines[-1] == "two spaces and a newline"


def test_a_slow_loop_reports_seconds_per_step_not_zero_a_second(tmp_path, monkeypatch):
    from helpers.core import progress

    target = tmp_path / "lines"
    monkeypatch.setenv(progress.PROGRESS_ENV, str(target))
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.0)
    clock = iter(float(t) for t in range(0, 1000, 5))  # every reading 5 s after the last
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with open(os.devnull, "w") as hidden:
        for _ in progress.bar(
            range(2), desc="corruptions", unit="pass", file=hidden, mininterval=0
        ):
            pass
    lines = target.read_text().splitlines()
    assert lines[0].startswith("corruptions: 50% (1/2 pass, ") and lines[0].endswith(" s/pass)")
    assert "0 pass/s" not in target.read_text()


def _fake_run(calls, fail_seed=None):
    """A stand-in for one seed's ./run_all.sh: records its command line and leaves a run folder
    with a manifest and one model's metrics (macro-F1 0.5 + seed / 100)."""

    def run_one(argv, rerun=False):
        calls.append(argv)
        seed = int(argv[argv.index("--seed") + 1])
        run = runner.Path(argv[argv.index("--run-dir") + 1])
        run.mkdir(parents=True, exist_ok=True)
        manifest = {"profile": {"name": "smoke"}, "seed": seed, "data": {"sha256": "x"}}
        write_json(run / "manifest.json", manifest)
        if seed == fail_seed:
            return 1
        f1 = 0.5 + seed / 100
        metrics = {"model": "custom_cnn", "n": 10, "expression": {"f1_macro": f1, "accuracy": f1}}
        write_json(run / "metrics" / "custom_cnn.json", metrics)
        return 0

    return run_one


def test_seeds_run_one_after_the_other_and_are_summed_up(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(runner, "run_one", _fake_run(calls))
    base = tmp_path / "three"
    argv = ["--profile", "smoke", "--seeds", "0,1,2", "--run-dir", str(base), "--only=01,05"]
    assert runner.main(argv) == 0
    assert calls == [
        [
            "--profile",
            "smoke",
            "--only=01,05",
            "--seed",
            str(k),
            "--run-dir",
            str(base / f"seed-{k}"),
        ]
        for k in (0, 1, 2)
    ]
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == str(base) and "| custom_cnn | 0, 1, 2 |" in "\n".join(printed)
    assert "0.510 ± 0.010" in (base / "seeds.md").read_text()
    assert {p.name for p in base.iterdir()} >= {"seed-0", "seed-2", "seeds.csv", "seeds.tex"}


def test_a_stopped_seed_is_gone_on_with_by_the_same_command_and_resume(
    tmp_path, monkeypatch, capsys
):
    calls = []
    monkeypatch.setattr(runner, "run_one", _fake_run(calls, fail_seed=1))
    base = tmp_path / "seeds"
    argv = ["--seeds", "0,1,2", "--run-dir", str(base)]
    assert runner.main(argv) == 1
    assert len(calls) == 2 and not (base / "seed-2").exists()
    err = capsys.readouterr().err
    assert f"go on with: ./run_all.sh --seeds 0,1,2 --run-dir {base} --resume" in err
    calls.clear()
    monkeypatch.setattr(runner, "run_one", _fake_run(calls))
    assert runner.main([*argv, "--resume"]) == 0
    assert [c[-1] for c in calls] == ["--resume", "--resume", str(base / "seed-2")]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--seeds", "1"], "two or more different seeds"),
        (["--seeds", "0,0"], "two or more different seeds"),
        (["--seeds", "a,b"], "whole numbers separated by commas"),
        (["--seeds", "0,1", "--seed", "3"], "leave out --seed"),
        (["--seeds", "0,1", "--resume"], "needs --run-dir naming the seeds' folder"),
    ],
)
def test_bad_seeds_are_refused_before_any_run(argv, says, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "run_one", lambda argv, rerun=False: pytest.fail("ran a seed"))
    assert runner.main([*argv]) == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        ("learning_rate=0.002", "learning_rate", 0.002),
        ("lr_schedule=cosine", "lr_schedule", "cosine"),
        ("augment={'noise_p': 0.3}", "augment", {"noise_p": 0.3}),
        ("04:batch_size=128", "04:batch_size", 128),
        ("04_train.vgg16:weights=None", "04_train.vgg16:weights", None),
        ("weights=/tmp/a:b.h5", "weights", "/tmp/a:b.h5"),
        ("04:backbone_options={'convs': (1, 2)}", "04:backbone_options", {"convs": [1, 2]}),
    ],
)
def test_a_setting_is_a_name_and_a_python_value(text, key, value):
    setting = runner.parse_setting(text)
    assert setting.key == key and setting.value == value


def test_settings_reach_the_stages_that_declare_them(tmp_path):
    _notebook(tmp_path / "03_augment.ipynb", "run_dir = ''\naugment = {}\nbatch_size = 1")
    _notebook(tmp_path / "04_train.ipynb", "run_dir = ''\nmodel = 'a'\nbatch_size = None")
    stages = runner.plan_stages(["custom_cnn", "vgg16"], tmp_path)
    settings = [
        runner.parse_setting(t)
        for t in ("batch_size=16", "04_train.vgg16:batch_size=8", "augment={'hflip_p': 0}")
    ]
    runner.check_settings(settings, stages)
    taken = {s.name: runner.stage_settings(s, settings) for s in stages}
    assert taken == {
        "03_augment": {"batch_size": 16, "augment": {"hflip_p": 0}},
        "04_train.custom_cnn": {"batch_size": 16, "augment": {"hflip_p": 0}},
        "04_train.vgg16": {"batch_size": 8, "augment": {"hflip_p": 0}},
    }
    for text, says in (
        ("batch_szie=3", "not a parameter of any notebook; did you mean batch_size"),
        ("03:model=x", "model is set with --models"),
        ("seed=3", "seed is set with --seed"),
        ("09:batch_size=3", "no stage starts with '09'; the stages are 03_augment, 04_train"),
        ("03:augmentation=3", "not a parameter of the 03 stages; did you mean augment"),
    ):
        with pytest.raises(ConfigError, match=says):
            runner.check_settings([runner.parse_setting(text)], stages)
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        runner.parse_setting("learning_rate")
    for text in ("x={1, 2}", "x=1e999", "x=b'raw'"):
        with pytest.raises(ConfigError, match="cannot be recorded in the manifest"):
            runner.parse_setting(text)
    assert runner.parse_setting("x={[1]: 2}").value == "{[1]: 2}"  # not a literal: the text
    # the most specific target wins, whatever the order they were given in
    late = [runner.parse_setting(t) for t in ("04_train.vgg16:batch_size=8", "04:batch_size=4")]
    assert stages[2].name == "04_train.vgg16"
    assert runner.stage_settings(stages[2], late) == {"batch_size": 8}


def test_a_run_records_its_settings_and_a_resume_keeps_them(tmp_path, monkeypatch, capsys):
    _notebook(tmp_path / "04_train.ipynb", "run_dir = ''\nmodel = 'a'\nlearning_rate = None")
    monkeypatch.setattr(runner.paths, "NOTEBOOKS_DIR", tmp_path)
    given = []
    monkeypatch.setattr(
        runner, "execute_stage", lambda stage, run, params, log, settings: given.append(settings)
    )
    monkeypatch.setattr(runner, "export_html", lambda out, html: out)
    data = tmp_path / "data.zip"
    data.write_bytes(b"PK")
    run = tmp_path / "run"
    argv = ["--data", str(data), "--models", "custom_cnn", "--run-dir", str(run)]
    assert runner.main([*argv, "--set", "learning_rate=0.002"]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["parameters"] == {"learning_rate": 0.002}
    assert given == [{"learning_rate": 0.002}]
    manifest["stages"] = {}
    write_json(run / "manifest.json", manifest)
    assert runner.main([*argv, "--resume"]) == 0 and given[-1] == {"learning_rate": 0.002}
    assert runner.main([*argv, "--resume", "--set", "learning_rate=0.01"]) == 2
    assert "started with --set learning_rate=0.002, and 04_train.custom_cnn finished with it" in (
        capsys.readouterr().err
    )


def test_a_stage_gets_only_the_parameters_its_notebook_declares(tmp_path, monkeypatch):
    import papermill

    _notebook(tmp_path / "05_evaluate.ipynb", "run_dir = ''\nmodel = 'a'\nbatch_size = 64")
    passed = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: passed.update(kw))
    stage = runner.Stage(tmp_path / "05_evaluate.ipynb", "vgg16")
    params = {"run_dir": str(tmp_path), "profile": "smoke"}
    runner.execute_stage(stage, tmp_path, params, False, {"batch_size": 8, "augment": {}})
    assert passed["parameters"] == {"run_dir": str(tmp_path), "model": "vgg16", "batch_size": 8}


def test_a_first_seed_refused_before_any_work_leaves_no_folder_and_no_resume_hint(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(runner, "run_one", lambda argv, rerun=False: 2)
    base = tmp_path / "seeds"
    assert runner.main(["--seeds", "0,1", "--run-dir", str(base)]) == 2
    assert not base.exists() and "go on with" not in capsys.readouterr().err


def test_seeds_resume_refuses_one_runs_folder_and_abbreviations_are_not_options(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text("{}")
    assert runner.main(["--seeds", "0,1", "--run-dir", str(run), "--resume"]) == 2
    assert "is one run's folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        runner.parse_args(["--res"])


def test_stage_01_shows_what_it_read_in_the_terminal(tmp_path, capfd):
    """`./run_all.sh --only 01` checks a dataset: the terminal shows records per split and per
    class, the absent classes and each drop reason with an example, as notebook 01 sends them."""
    from PIL import Image

    from helpers.core import paths
    from helpers.data import datasets

    source = tmp_path / "faces"
    for folder, n in (("train/happy", 2), ("train/sad", 1), ("test/happy", 1), ("train/x", 1)):
        (source / folder).mkdir(parents=True)
        for k in range(n):
            Image.new("L", (4, 4), 9 * k).save(source / folder / f"{k}.png")
    result = datasets.read_source(source, progress=False)
    capfd.readouterr()
    stage = runner.Stage(tmp_path / "01_extract.ipynb")
    with runner.stage_output(tmp_path / "run", stage, quiet=True):
        datasets.announce(result)
    out = capfd.readouterr().out.splitlines()
    assert out[:2] == [
        "[run_all]       folders: 4 records from faces (train 3, test 1); per class: Happy 3, "
        "Sad 1; absent: Neutral, Surprise, Fear, Disgust, Anger, Contempt",
        "[run_all]       dropped 1 x unknown class folder, e.g. train/x/",
    ]
    # and how to name the folder it left out
    assert len(out) == 3 and out[2].startswith("[run_all]       note: class folders are named")
    notebook = nbformat.read(paths.NOTEBOOKS_DIR / "01_extract.ipynb", as_version=4)
    assert any("datasets.announce(result)" in cell.source for cell in notebook.cells)


def test_stage_03_names_a_class_too_small_to_split_in_the_terminal(tmp_path, capfd):
    import pandas as pd

    from helpers.data import splits

    labels = [1] * 10 + [2] * 10 + [4]  # one Fear face
    table = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(len(labels))],
            "image": "x.png",
            "source": "faces",
            "expression": labels,
            "split": None,
        }
    )
    stage = runner.Stage(tmp_path / "03_augment.ipynb")
    with (
        runner.stage_output(tmp_path / "run", stage, quiet=True),
        pytest.warns(UserWarning, match=r"kept in train: Fear \(1\)"),
    ):
        out = splits.split_records(table, None, val_share=0.2, test_share=0.2, seed=0)[0]
    assert out.loc[out["expression"] == 4, "split"].tolist() == ["train"]
    assert capfd.readouterr().out.splitlines() == [
        "[run_all]       too few faces to split, kept in train only (no validation or test "
        "faces for it): Fear 1 face"
    ]


def test_notebook_01_under_the_runner_takes_the_manifests_sha256_of_the_data(tmp_path, monkeypatch):
    import hashlib
    import time

    from helpers.core.run_folder import RunFolder
    from helpers.run import profiles

    def recorded(run):
        return json.loads(run.settings.read_text())["data"]["sha256"]

    data = tmp_path / "faces.zip"
    data.write_bytes(b"many gigabytes")
    sha = hashlib.sha256(b"many gigabytes").hexdigest()
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    started = runner.datetime.fromtimestamp(time.time() + 2, runner.UTC)  # after the data
    created = started.isoformat(timespec="seconds")
    write_json(run.manifest, {"created": created, "data": {"path": str(data), "sha256": sha}})
    hashed = []
    monkeypatch.setattr(paths, "data_fingerprint", lambda p: hashed.append(p) or "rehashed")
    profiles.record_data(run, data, "smoke", 0)
    assert recorded(run) == sha and hashed == []  # hashed once, by the runner
    other = tmp_path / "other.zip"
    other.write_bytes(b"other faces")
    profiles.record_data(run, other, "smoke", 0)  # another file: its own sha256
    assert hashed == [other.resolve()]
    os.utime(data, (time.time() + 10, time.time() + 10))  # changed since the run started
    profiles.record_data(run, data, "smoke", 0)
    assert hashed[-1] == data.resolve() and recorded(run) == "rehashed"


def test_notebook_01_takes_the_manifests_sha256_of_data_reached_through_a_link(tmp_path):
    import time

    from helpers.core.run_folder import RunFolder
    from helpers.run import profiles

    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "faces.zip").write_bytes(b"many gigabytes")
    (tmp_path / "data").symlink_to(tmp_path / "disk")  # data/ a link to a larger disk
    data = tmp_path / "data" / "faces.zip"
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    created = runner.datetime.fromtimestamp(time.time() + 2, runner.UTC).isoformat()
    write_json(run.manifest, {"created": created, "data": {"path": str(data), "sha256": "kept"}})
    for source in (data, tmp_path / "disk" / "faces.zip"):  # either name of the file
        profiles.record_data(run, source, "smoke", 0)
        assert json.loads(run.settings.read_text())["data"]["sha256"] == "kept"


def test_another_keras_backend_is_refused_at_once_in_one_line(tmp_path, capsys, monkeypatch):
    """Under KERAS_BACKEND=jax the notebooks' TensorFlow-only steps (Grad-CAM, TFLite) would
    fail minutes in: ./run_all.sh refuses before any work, naming what needs TensorFlow."""

    def ran(*args, **kwargs):
        raise AssertionError("stages ran under another Keras backend")

    monkeypatch.setattr(runner, "run_stages", ran)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert runner.main(["--profile", "smoke", "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ./run_all.sh needs the TensorFlow Keras")
    assert "Grad-CAM" in err[0] and "jax" in err[0]
    assert not (tmp_path / "r").exists()


def test_stages_that_run_on_any_keras_backend_are_not_refused(tmp_path, capsys, monkeypatch):
    for name in ("01_extract", "02_eda", "06_report", "07_predict"):
        _notebook(tmp_path / f"{name}.ipynb", "run_dir = ''")
    _notebook(tmp_path / "05_evaluate.ipynb", "run_dir = ''\nmodel = ''")
    monkeypatch.setattr(runner.paths, "NOTEBOOKS_DIR", tmp_path)
    ran = []
    monkeypatch.setattr(runner, "run_stages", lambda *a: ran.append([s.name for s in a[6]]) or 0)
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    data = tmp_path / "data.zip"
    data.write_bytes(b"PK")
    given = ["--data", str(data), "--models", "custom_cnn"]
    assert runner.main([*given, "--only", "01,02", "--run-dir", str(tmp_path / "a")]) == 0
    assert ran == [["01_extract", "02_eda"]]
    capsys.readouterr()
    for only in ("01,05", "01,07"):
        run = tmp_path / f"r{only[-1]}"
        assert runner.main([*given, "--only", only, "--run-dir", str(run)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "jax" in err[0] and f"this call runs {only[-2:]}_" in err[0]
        assert not run.exists()
    # a --resume --only 06 runs 06 again alone: not refused either
    plan = runner.plan_stages(["custom_cnn"])
    stages = {s.name: {"status": "ok"} for s in plan}
    only = runner.only_stages("06", plan)
    assert runner.tensorflow_stages(only, {"stages": stages}, {"06_report"}) == []
    stages["02_eda"] = {"status": "failed"}  # 02 runs again: 05 and 07 after it turn outdated
    names = runner.tensorflow_stages(plan, {"stages": stages}, set())
    assert [s.name for s in names] == ["05_evaluate.custom_cnn", "07_predict"]


def test_notebook_01_is_told_the_folder_the_runner_made_for_it(tmp_path, monkeypatch):
    import papermill

    from helpers.core.run_folder import RUNNER_ENV, RunFolder

    monkeypatch.delenv(RUNNER_ENV, raising=False)
    _notebook(tmp_path / "01_extract.ipynb", "run_dir = ''")
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / "manifest.json", {"stages": {}})  # the runner writes it before stage 01
    started = []
    monkeypatch.setattr(
        papermill,
        "execute_notebook",
        lambda *a, **kw: started.append(
            RunFolder.resolve(kw["parameters"]["run_dir"], create=True)
        ),
    )
    runner.execute_stage(runner.Stage(tmp_path / "01_extract.ipynb"), run, {"run_dir": str(run)},
                         False)  # fmt: skip
    assert started == [run] and RUNNER_ENV not in os.environ
    with pytest.raises(ConfigError, match="already holds a run"):  # by hand it is a run's
        RunFolder.resolve(str(run), create=True)


def test_the_manifest_says_whether_the_code_had_uncommitted_changes(tmp_path, monkeypatch):
    _notebook(tmp_path / "02_eda.ipynb", "run_dir = ''")
    monkeypatch.setattr(runner.paths, "NOTEBOOKS_DIR", tmp_path)
    monkeypatch.setattr(runner, "execute_stage", lambda *a: None)
    monkeypatch.setattr(runner, "export_html", lambda out, html: out)
    monkeypatch.setattr(
        runner.paths, "source_version", lambda: {"git_commit": "8a4dab55", "git_dirty": True}
    )
    data = tmp_path / "data.zip"
    data.write_bytes(b"PK")
    run = tmp_path / "run"
    assert runner.main(["--data", str(data), "--models", "custom_cnn", "--run-dir", str(run)]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["git_commit"] == "8a4dab55" and manifest["git_dirty"] is True


def test_html_copies_show_paths_from_the_project_or_the_run_folder_on(tmp_path):
    from nbformat.v4 import new_output

    run = tmp_path / "elsewhere" / "rf_smoke"
    (run / "notebooks").mkdir(parents=True)
    nb = new_notebook()
    cell = new_code_cell("print(paths)")
    cell.outputs = [
        new_output("stream", name="stdout", text=f"video {run}/demo_scenes/clip.avi: 9 frames\n"),
        new_output("stream", name="stdout", text=f"{paths.REPO_ROOT}/reports/leaderboard.csv\n"),
    ]
    nb.cells = [cell]
    nbformat.write(nb, run / "notebooks" / "07_predict.ipynb")
    html = runner.export_html(run / "notebooks" / "07_predict.ipynb", run / "html").read_text()
    assert str(tmp_path) not in html and str(paths.REPO_ROOT) not in html
    assert "video rf_smoke/demo_scenes/clip.avi" in html and "reports/leaderboard.csv" in html


def test_a_report_is_made_from_notebooks_run_by_hand_as_the_runner_makes_it(
    tmp_path, monkeypatch, capsys
):
    from nbformat.v4 import new_output

    from helpers.core.run_folder import RUNNER_ENV
    from helpers.run import nbtools

    monkeypatch.delenv(RUNNER_ENV, raising=False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "records.parquet").write_bytes(b"x")
    nbtools.report_note(run)
    assert f"nbtools report {run}" in capsys.readouterr().out
    executed = []

    def execute(stage, run_dir, params, log_output, settings=None):
        executed.append((stage.name, params))
        nb = new_notebook()
        cell = new_code_cell("print(1)")
        cell.outputs = [new_output("stream", name="stdout", text="2 models evaluated\n")]
        nb.cells = [cell]
        out = run_dir / "notebooks" / f"{stage.name}.ipynb"
        out.parent.mkdir(exist_ok=True)
        nbformat.write(nb, out)
        return out

    monkeypatch.setattr(runner, "execute_stage", execute)
    assert nbtools.main(["report", str(run)]) == 0
    assert executed == [("06_report", {"run_dir": str(run), "seed": 0})]
    assert "2 models evaluated" in (run / "report.html").read_text()
    assert "<title>Report: run</title>" in (run / "report.html").read_text()
    assert (run / "html" / "06_report.html").is_file()
    assert capsys.readouterr().out.splitlines()[-1] == f"report: {run / 'report.html'}"
    monkeypatch.setenv(RUNNER_ENV, str(run))
    nbtools.report_note(run)  # ./run_all.sh writes it: nothing to say
    assert capsys.readouterr().out == ""


def test_html_copies_of_a_run_directly_under_the_root_keep_images_links_and_paths(
    tmp_path, monkeypatch
):
    from nbformat.v4 import new_output

    run = tmp_path / "results"
    (run / "notebooks").mkdir(parents=True)
    png = "iVBORw0KGgo//AB//CD+/"
    nb = new_notebook()
    cell = new_code_cell("print(paths)")
    cell.outputs = [
        new_output("display_data", data={"image/png": png, "text/plain": "<Figure>"}),
        new_output("stream", name="stdout", text="see https://cdn.x/data/y.js and /data/z.csv\n"),
    ]
    nb.cells = [cell]
    nbformat.write(nb, run / "notebooks" / "07_predict.ipynb")
    real = Path.resolve
    # the run folder is /results: its parent, /, is never taken out of the paths shown
    monkeypatch.setattr(
        Path, "resolve", lambda p, strict=False: Path("/results") if p == run else real(p, strict)
    )
    html = runner.export_html(run / "notebooks" / "07_predict.ipynb", run / "html").read_text()
    assert f"data:image/png;base64,{png}" in html
    assert "https://cdn.x/data/y.js and /data/z.csv" in html
    assert runner.shown_paths("base64,AB//CD https://cdn.x/y.js", Path("/results")) == (
        "base64,AB//CD https://cdn.x/y.js"
    )
    monkeypatch.setattr(runner.paths, "REPO_ROOT", Path("/data"))
    shown = "data:image/png;base64,/data/AB https://x.org/data/y /data/run/a.csv my/data/b"
    assert runner.shown_paths(shown, Path("/data/run")) == (
        "data:image/png;base64,/data/AB https://x.org/data/y run/a.csv my/data/b"
    )


def test_the_report_command_pastes_back_and_a_series_folder_names_its_runs(
    tmp_path, monkeypatch, capsys
):
    from helpers.core.run_folder import RUNNER_ENV
    from helpers.run import nbtools

    monkeypatch.delenv(RUNNER_ENV, raising=False)
    run = tmp_path / "my runs" / "run 1"
    run.mkdir(parents=True)
    command = nbtools.report_command(run)
    assert shlex.split(command)[-2:] == ["report", str(run)]
    series = tmp_path / "my runs" / "seeds"
    for member in ("seed-0", "seed-1"):
        (series / member).mkdir(parents=True)
        (series / member / "records.parquet").write_bytes(b"x")
    monkeypatch.setattr(runner, "execute_stage", lambda *a, **k: pytest.fail("06 ran"))
    assert nbtools.main(["report", str(series)]) == 2
    err = capsys.readouterr().err
    assert "give one of its runs" in err
    assert shlex.split(err.partition("give one of its runs: ")[2]) == [
        str(series / "seed-0"),
        str(series / "seed-1"),
    ]
    assert not (series / "report.html").exists() and not (series / "notebooks").exists()


@pytest.mark.parametrize("flag", [True, False])
def test_log_output_prints_every_cell_s_output_and_keeps_it_in_the_log(
    flag, tmp_path, monkeypatch, capfd
):
    """--log-output: a cell's printed line reaches the terminal as the cell runs, and the
    stage's log; without it the terminal shows the runner's own lines only."""
    import logging

    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = new_notebook()
    params = new_code_cell("run_dir = ''")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell("print('the cell says 41 + 1')")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / "01_hello.ipynb")
    monkeypatch.setattr(runner.paths, "NOTEBOOKS_DIR", folder)
    monkeypatch.setattr(runner, "export_html", lambda out, html: out)
    data = tmp_path / "data.zip"
    data.write_bytes(b"PK")
    run = tmp_path / "run"
    argv = ["--profile", "smoke", "--data", str(data), "--run-dir", str(run)]
    assert runner.main([*argv, *(["--log-output"] * flag)]) == 0
    printed = capfd.readouterr()
    assert ("the cell says 41 + 1" in printed.out + printed.err) is flag
    log = run / "logs" / "01_hello.log"
    assert ("the cell says 41 + 1" in log.read_text()) is flag
    papermill_logger = logging.getLogger("papermill")
    assert papermill_logger.handlers == [] and papermill_logger.level == logging.NOTSET


def test_a_mistyped_registry_entry_is_refused_before_any_stage(tmp_path, capsys, monkeypatch):
    """The entries of the models a run trains are resolved before 01 runs (in a process of
    their own: the runner never imports Keras), one line naming the entry and its field."""
    from dataclasses import replace

    from helpers.models import registry

    register = (
        "from dataclasses import replace\nfrom helpers.models import registry as r\n"
        "r.register(replace(r.get('custom_cnn'), name='badnet', builder='json:dumpz'))\n"
    )
    monkeypatch.setattr(runner, "ENTRY_CHECK", register + runner.ENTRY_CHECK)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register(replace(registry.get("custom_cnn"), name="badnet", builder="json:dumpz"))
    monkeypatch.setattr(runner, "run_stages", lambda *a: pytest.fail("stages ran"))
    runner.entry_problem.cache_clear()
    run = tmp_path / "r"
    assert runner.main(["--profile", "smoke", "--models", "badnet", "--run-dir", str(run)]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: registry entry 'badnet': builder 'json:dumpz': module json has no 'dumpz'"
    )
    assert not run.exists()
    runner.entry_problem.cache_clear()


def test_a_notebook_kernel_imports_the_helpers_of_the_process_that_runs_it(tmp_path, monkeypatch):
    """With one virtual environment for two clones, the kernel (started in notebooks/) must not
    import another copy of `helpers` than the caller's, as `nbtools report` and ./run_all.sh
    run: here a PYTHONPATH entry names another `helpers` first."""
    import helpers

    other = tmp_path / "other"
    (other / "helpers").mkdir(parents=True)
    (other / "helpers" / "__init__.py").write_text("")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(other), os.environ.get("PYTHONPATH", "")])
    )
    notebook = tmp_path / "notebooks" / "09_where.ipynb"
    notebook.parent.mkdir()
    _notebook(notebook, "run_dir = ''")
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(
        new_code_cell(
            "import helpers, pathlib\npathlib.Path(run_dir, 'where').write_text(helpers.__file__)"
        )
    )
    nbformat.write(nb, notebook)
    run = tmp_path / "run"
    run.mkdir()
    runner.execute_stage(runner.Stage(notebook), run, {"run_dir": str(run)}, log_output=False)
    assert Path((run / "where").read_text()).resolve() == Path(helpers.__file__).resolve()
    assert os.environ["PYTHONPATH"].startswith(str(other))  # the caller's own left as it was


@pytest.mark.parametrize("columns", [60, 80, 100, 120])
def test_help_never_breaks_an_option_name_across_two_lines(columns, monkeypatch, capsys):
    """An option named in another's help (--run-dir) is found and copied whole."""
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit):
        runner.parse_args(["--help"])
    lines = capsys.readouterr().out.splitlines()
    split = [line for line in lines if re.search(r"(^|\s)--?[\w-]*-$", line)]
    assert not split, split


@pytest.mark.parametrize("terminal", [True, False])
def test_log_output_draws_papermills_bar_on_a_terminal_only(terminal, tmp_path, monkeypatch):
    """--log-output piped to a file: no bar, whose carriage returns would glue its frames to
    the cells' lines; on a terminal the bar is drawn."""
    import papermill

    _notebook(tmp_path / "01_hello.ipynb", "run_dir = ''")
    given = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: given.update(kw))
    monkeypatch.setattr(runner, "stderr_is_terminal", lambda: terminal)
    (tmp_path / "run").mkdir()
    stage = runner.Stage(tmp_path / "01_hello.ipynb")
    runner.execute_stage(stage, tmp_path / "run", {"run_dir": "x"}, log_output=True)
    assert given["progress_bar"] is terminal and given["log_output"] is True
    runner.execute_stage(stage, tmp_path / "run", {"run_dir": "x"}, log_output=False)
    assert given["progress_bar"] is False and given["log_output"] is False
