"""Runs: a stage that crashes or is killed, an existing run folder, a full disk, bad
parameters. Each ends in a clear message and an exit code; finished work and earlier runs
stay on disk; `--resume` continues where the run stopped."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pyarrow.parquet as pq
import pytest
from nbformat.v4 import new_code_cell, new_notebook
from PIL import Image

from builders import encode
from helpers.core import paths
from helpers.core.errors import ConfigError, DataError
from helpers.core.records import load_records, make_records, save_records
from helpers.data import augment, synthetic
from helpers.run import profiles as config
from helpers.run import runner

PARAMS = "run_dir = ''\nprofile = 'cpu'\nseed = 0\ndata = ''\ntest_data = ''"
# Every stage notes that it ran, then writes its output; 02 can be told to fail on the
# (junk) data or to hang.
BODY = {
    "01_first": "",
    "02_flaky": (
        "import os, time\n"
        "if os.environ.get('ROBUST_FAIL') == 'raise':  # the data is junk\n"
        "    from helpers.data.datasets import read_source\n"
        "    read_source(data)\n"
        "if os.environ.get('ROBUST_FAIL') == 'hang':\n"
        "    (out / 'hanging.pid').write_text(str(os.getpid()))\n"
        "    time.sleep(120)\n"
    ),
    "03_last": "",
}


def write_notebook(path: Path, name: str) -> None:
    """A tiny papermill-ready notebook that logs its run into the run folder."""
    params = new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    body = (
        "from pathlib import Path\n"
        "out = Path(run_dir)\n"
        f"with open(out / 'calls.txt', 'a') as f:\n    f.write('{name}\\n')\n"
        f"{BODY[name]}"
        f"(out / '{name}.done').write_text(profile + ' ' + str(seed))\n"
    )
    nb = new_notebook(cells=[params, new_code_cell(body)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture
def notebooks(tmp_path, monkeypatch):
    """Three fake stages in place of the real notebooks."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in BODY:
        write_notebook(folder / f"{name}.ipynb", name)
    monkeypatch.setattr(paths, "NOTEBOOKS_DIR", folder)
    monkeypatch.delenv("ROBUST_FAIL", raising=False)
    return folder


@pytest.fixture
def data(tmp_path):
    """Some input file, so no demo set is generated."""
    path = tmp_path / "input" / "data.zip"
    path.parent.mkdir()
    path.write_bytes(b"stand-in data")
    return path


def calls(run: Path) -> list[str]:
    """Stages run so far, in order."""
    return (run / "calls.txt").read_text().split()


def statuses(run: Path) -> dict[str, str]:
    """Stage -> status from the manifest."""
    manifest = json.loads((run / "manifest.json").read_text())
    return {name: s["status"] for name, s in manifest["stages"].items()}


def earlier_run(tmp_path: Path) -> Path:
    """A finished run folder from before, which nothing may touch."""
    old = tmp_path / "runs" / "20250101-000000"
    (old / "models").mkdir(parents=True)
    (old / "models" / "custom_cnn.keras").write_bytes(b"weights")
    (old / "manifest.json").write_text("{}")
    return old


def test_stage_crash_then_resume(tmp_path, notebooks, data, monkeypatch, capsys, untouched):
    earlier_run(tmp_path)
    run = tmp_path / "runs" / "new"
    args = [
        "--profile",
        "smoke",
        "--models",
        "custom_cnn",
        "--data",
        str(data),
        "--run-dir",
        str(run),
    ]
    with untouched(allow=[run]):
        monkeypatch.setenv("ROBUST_FAIL", "raise")
        assert runner.main(args) == 1
        out, err = capsys.readouterr()
        assert str(run.resolve()) not in out.strip().splitlines()[-1]  # no result to point at
        assert "Stage 02_flaky failed in cell" in err, err
        assert f"DataError: {data}: not a zip archive, or truncated/corrupt" in err
        assert f"--resume --run-dir {run.resolve()}" in err
        assert "Traceback" not in err
        assert statuses(run) == {"01_first": "ok", "02_flaky": "failed"}
        assert calls(run) == ["01_first", "02_flaky"]
        first_done = (run / "01_first.done").stat().st_mtime_ns

        monkeypatch.delenv("ROBUST_FAIL")
        # Without --resume the half-done run is refused, not overwritten.
        assert runner.main(args) == 2
        assert "already exists" in capsys.readouterr().err
        # --resume alone: the run's own profile and models, finished stages skipped.
        assert runner.main(["--resume", "--run-dir", str(run)]) == 0
        out = capsys.readouterr().out
        assert "01_first: already done, skipped" in out
    assert calls(run) == ["01_first", "02_flaky", "02_flaky", "03_last"]
    assert statuses(run) == {"01_first": "ok", "02_flaky": "ok", "03_last": "ok"}
    assert (run / "01_first.done").stat().st_mtime_ns == first_done
    assert (run / "03_last.done").read_text() == "smoke 0"  # not the default profile
    assert sorted(p.name for p in (run / "notebooks").iterdir()) == [
        "01_first.ipynb",
        "02_flaky.ipynb",
        "03_last.ipynb",
    ]
    assert not list(run.rglob("*.tmp"))


def test_stage_killed_then_resume(tmp_path, notebooks, data, untouched):
    """SIGKILL of the whole driver mid-stage (power cut, OOM killer): resume redoes that stage."""
    earlier_run(tmp_path)
    run = tmp_path / "runs" / "killed"
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from helpers.core import paths\nfrom helpers.run import runner\n"
        f"paths.NOTEBOOKS_DIR = Path({str(notebooks)!r})\n"
        "sys.exit(runner.main(sys.argv[1:]))\n"
    )
    with untouched(allow=[run]):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                "--profile",
                "smoke",
                "--models",
                "custom_cnn",
                "--data",
                str(data),
                "--run-dir",
                str(run),
            ],
            env={**os.environ, "ROBUST_FAIL": "hang"},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        marker = run / "hanging.pid"
        try:
            deadline = time.monotonic() + 120
            while not marker.exists() or not marker.read_text():
                assert proc.poll() is None, "the driver ended before stage 02 started"
                assert time.monotonic() < deadline, "stage 02 never started"
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if marker.exists() and marker.read_text():
                with contextlib.suppress(ProcessLookupError):  # the kernel has its own session
                    os.kill(int(marker.read_text()), signal.SIGKILL)
        assert statuses(run) == {"01_first": "ok"}  # 02 never reported: not done
        assert runner.main(["--resume", "--run-dir", str(run)]) == 0
    assert calls(run) == ["01_first", "02_flaky", "02_flaky", "03_last"]
    assert statuses(run) == {"01_first": "ok", "02_flaky": "ok", "03_last": "ok"}


def test_ctrl_c_is_recorded_and_resumable(
    tmp_path, notebooks, data, monkeypatch, capsys, untouched
):
    run = tmp_path / "run"
    real = runner.execute_stage

    def interrupt_02(stage, *a, **kw):
        if stage.name == "02_flaky":
            raise KeyboardInterrupt
        return real(stage, *a, **kw)

    monkeypatch.setattr(runner, "execute_stage", interrupt_02)
    with untouched(allow=[run]):
        assert (
            runner.main(
                [
                    "--profile",
                    "smoke",
                    "--data",
                    str(data),
                    "--run-dir",
                    str(run),
                    "--only",
                    "01,02",
                ]
            )
            == 130
        )
    err = capsys.readouterr().err
    assert "interrupted during 02_flaky" in err and "--resume" in err
    assert statuses(run) == {"01_first": "ok", "02_flaky": "interrupted"}


def test_existing_run_folder_is_never_overwritten(tmp_path, notebooks, data, capsys, untouched):
    old = earlier_run(tmp_path)
    a_file = tmp_path / "input" / "notes.txt"
    a_file.write_text("mine")
    with untouched():
        for argv, problem in [
            (["--run-dir", str(old)], "already exists"),  # no --resume flag
            (["--run-dir", str(a_file)], "is a file"),
            (["--resume", "--run-dir", str(tmp_path / "input")], "no manifest.json"),
            (["--resume", "--run-dir", str(old)], "damaged"),  # {} is no manifest
            (["--resume"], "--run-dir"),
        ]:
            assert runner.main(["--data", str(data), *argv]) == 2, argv
            assert problem in capsys.readouterr().err, argv


def test_resume_refuses_another_profile(tmp_path, notebooks, data, capsys, untouched):
    run = tmp_path / "run"
    assert (
        runner.main(
            ["--profile", "smoke", "--data", str(data), "--run-dir", str(run), "--only", "01"]
        )
        == 0
    )
    with untouched():
        assert runner.main(["--resume", "--run-dir", str(run), "--profile", "gpu"]) == 2
    assert "started with --profile smoke" in capsys.readouterr().err


def test_several_external_test_sets(tmp_path, notebooks, data, capsys, untouched):
    """--test-data repeats: the notebooks get every set, in order, and a resume keeps them."""
    first, second = data.with_name("ck.zip"), data.with_name("jaffe.zip")
    first.write_bytes(b"one"), second.write_bytes(b"two")
    run = tmp_path / "run"
    args = ["--profile", "smoke", "--data", str(data), "--run-dir", str(run), "--only", "01"]
    sets = ["--test-data", str(first), "--test-data", str(second), "--test-data", str(first)]
    assert runner.main([*args, *sets]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["test_data"] == [str(first.resolve()), str(second.resolve())]
    executed = nbformat.read(run / "notebooks" / "01_first.ipynb", as_version=4)
    assert f"test_data = {json.dumps([str(first.resolve()), str(second.resolve())])}" in "".join(
        c.source for c in executed.cells
    )
    with untouched():
        assert runner.main(["--resume", "--run-dir", str(run), "--test-data", str(first)]) == 2
        assert f"started with --test-data {first.resolve()}, {second.resolve()}" in (
            capsys.readouterr().err
        )


def test_resume_keeps_the_data_and_seed_it_started_with(
    tmp_path, notebooks, data, capsys, untouched
):
    run = tmp_path / "run"
    assert (
        runner.main(
            [
                "--profile",
                "smoke",
                "--data",
                str(data),
                "--run-dir",
                str(run),
                "--seed",
                "3",
                "--only",
                "01",
            ]
        )
        == 0
    )
    other = data.with_name("other.zip")
    other.write_bytes(b"other data")
    with untouched():
        assert runner.main(["--resume", "--run-dir", str(run), "--data", str(other)]) == 2
        assert "started with --data" in capsys.readouterr().err
        assert runner.main(["--resume", "--run-dir", str(run), "--seed", "4"]) == 2
        assert "started with --seed 3" in capsys.readouterr().err
        assert runner.main(["--resume", "--run-dir", str(run), "--test-data", str(other)]) == 2
        assert "started with --test-data (none)" in capsys.readouterr().err
    data.write_bytes(b"replaced data")  # same name, other bytes
    with untouched(allow=[data]):
        assert runner.main(["--resume", "--run-dir", str(run)]) == 2
    assert "has changed since" in capsys.readouterr().err
    assert statuses(run) == {"01_first": "ok"}


def test_two_runs_on_one_folder(tmp_path, notebooks, data, capsys, untouched):
    import fcntl

    run = tmp_path / "run"
    assert (
        runner.main(
            ["--profile", "smoke", "--data", str(data), "--run-dir", str(run), "--only", "01"]
        )
        == 0
    )
    held = os.open(run, os.O_RDONLY)  # what a first run_all.sh holds while it runs
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with untouched():
            assert runner.main(["--resume", "--run-dir", str(run)]) == 2
        assert "is in use by another run_all.sh" in capsys.readouterr().err
    finally:
        os.close(held)
    assert runner.main(["--resume", "--run-dir", str(run)]) == 0  # released: it runs
    assert set(statuses(run).values()) == {"ok"}


def enospc(*args, **kwargs):
    """What a write does on a full disk."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def half_then_enospc(self, data, *args, **kwargs):
    """Write part of the file, then run out of space (the worst case: a half file)."""
    with open(self, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data[: len(data) // 2])
    enospc()


def test_full_disk(tmp_path, notebooks, data, monkeypatch, capsys, untouched):
    # the manifest: clear error naming it, no half file, exit 1
    run = tmp_path / "run"
    with untouched(allow=[run]), monkeypatch.context() as m:
        m.setattr(Path, "write_text", half_then_enospc)
        assert runner.main(["--data", str(data), "--run-dir", str(run), "--only", "01"]) == 1
    err = capsys.readouterr().err
    assert f"error: cannot write to the run folder {run.resolve()} (No space left on device)" in err
    assert "Traceback" not in err and list(run.iterdir()) == []

    # the records table: the previous file survives whole, no temporary left
    table = make_records({"id": ["a"], "image": ["a.png"], "source": ["s"], "expression": [1]})
    target = tmp_path / "out" / "records.parquet"
    save_records(table, target)
    before = target.read_bytes()

    def half_parquet(tbl, where, *a, **kw):
        Path(where).write_bytes(b"PAR1 half")
        enospc()

    with untouched(allow=[tmp_path / "out"]), monkeypatch.context() as m:
        m.setattr(pq, "write_table", half_parquet)
        with pytest.raises(DataError, match="No space left") as caught:
            save_records(table.assign(expression=2), target)
    assert caught.value.path == str(target)
    assert target.read_bytes() == before and os.listdir(target.parent) == ["records.parquet"]
    assert load_records(target)["expression"].tolist() == [1]

    # augmented images: the .part file is removed, the error propagates
    image = tmp_path / "out" / "face.png"
    image.write_bytes(encode(Image.fromarray(np.full((16, 16, 3), 90, np.uint8)), "PNG"))
    records = make_records(
        {
            "id": ["a", "b"],
            "image": [str(image)] * 2,
            "source": ["s"] * 2,
            "expression": [1, 2],
            "split": ["train"] * 2,
        }
    )
    plan = augment.plan_balance(records, "upsample", target_per_class=2)
    aug = tmp_path / "out" / "aug"
    with monkeypatch.context() as m:
        m.setattr(Path, "write_bytes", half_then_enospc)
        with pytest.raises(DataError, match="cannot write the augmented image") as caught:
            augment.materialize(
                plan, records, augment.AugmentConfig(), aug, progress=False, workers=1
            )
    assert caught.value.__cause__.errno == errno.ENOSPC and caught.value.path.startswith(str(aug))
    assert not [p for p in aug.rglob("*") if p.is_file()]

    # the demo zip, the disk filling up after a few members: no zip, no temporary file
    demo = tmp_path / "out" / "demo.zip"
    writestr, written = synthetic.zipfile.ZipFile.writestr, []

    def fills_up(self, *args, **kwargs):
        if len(written) == 6:
            enospc()
        written.append(args[0])
        return writestr(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(synthetic.zipfile.ZipFile, "writestr", fills_up)
        with pytest.raises(DataError, match="cannot write the demo dataset") as caught:
            synthetic.generate_zip(
                demo, n=4, size=64, invalid_exp_share=0, missing_exp_share=0, progress=False
            )
    assert caught.value.path == str(demo)
    assert sorted(os.listdir(demo.parent)) == ["aug", "face.png", "records.parquet"]
    assert len(written) == 6


BAD_OVERRIDES = [
    ({"epochs": "ten"}, "epochs"),
    ({"epochs": 2.5}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"batch_size": [32]}, "batch_size"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"balance": 3}, "balance"),
    ({"image_size": None, "channels": "3"}, "channels"),
]


def test_bad_parameters_fail_before_any_work(tmp_path, notebooks, data, capsys, untouched):
    for overrides, problem in BAD_OVERRIDES:  # what a notebook's parameters cell passes
        with pytest.raises(ConfigError, match=problem):
            config.resolve("smoke", **overrides)
    for models in ("alexnet", "custom_cnn,resnet5", " , ", ["vgg16", "VGG16"]):
        with pytest.raises(ConfigError):
            config.parse_models(models)
    run = tmp_path / "run"
    with untouched():
        for argv in (
            ["--profile", "tiny"],
            ["--models", "custom_cnn,alexnet"],
            ["--models", " , "],
            ["--test-data", str(tmp_path / "nope")],
        ):
            assert runner.main([*argv, "--data", str(data), "--run-dir", str(run)]) == 2
            assert capsys.readouterr().err.startswith("error: ")
        assert runner.main(["--data", str(tmp_path / "nope.zip"), "--run-dir", str(run)]) == 2
        assert "no such file" in capsys.readouterr().err
        with pytest.raises(SystemExit) as exited:  # argparse: usage line and exit 2
            runner.main(["--seed", "abc", "--run-dir", str(run)])
        assert exited.value.code == 2
    assert not run.exists()


def test_a_model_named_twice_is_planned_once():
    models = config.parse_models("custom_cnn,custom_cnn,vgg16,custom_cnn")
    assert models == ["custom_cnn", "vgg16"]
    names = [s.name for s in runner.plan_stages(models, paths.REPO_ROOT / "notebooks")]
    assert names.count("04_train.custom_cnn") == 1 and names.count("05_evaluate.vgg16") == 1
