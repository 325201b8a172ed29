"""run_all.sh's driver: validation before work, stage planning, no overwrites, clear failures."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

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
    assert not (tmp_path / "r").exists()


def test_failure_message_names_stage_cell_and_error(tmp_path):
    class FakeError(Exception):
        exec_count, ename, evalue = 7, "ValueError", "bad pixels"

    stage = runner.Stage(tmp_path / "02_eda.ipynb")
    text = runner.describe_failure(stage, tmp_path / "out.ipynb", FakeError())
    assert "02_eda" in text and "cell [7]" in text and "ValueError: bad pixels" in text


def test_data_fingerprint_is_stable_and_content_sensitive(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc")
    first = runner.data_fingerprint(f)
    assert first == runner.data_fingerprint(f)
    f.write_bytes(b"abd")
    assert runner.data_fingerprint(f) != first


def test_write_json_is_atomic(tmp_path):
    target = tmp_path / "manifest.json"
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert not list(tmp_path.glob("*.tmp"))
