"""Batch driver behind run_all.sh: every numbered notebook, in order, into one run folder."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import logging
import os
import platform
import re
import shlex
import signal
import site
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from helpers.core import keras_backend, paths
from helpers.core.argv import without_options
from helpers.core.errors import ConfigError, DataError, did_you_mean
from helpers.core.jsonio import read_json, write_json, write_text
from helpers.core.progress import PROGRESS_ENV
from helpers.core.run_folder import RUNNER_ENV, RunFolder, series_members
from helpers.run import profiles as config
from helpers.run.recap import recap_lines

PACKAGES = (
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
    "albumentations",
    "opencv-python-headless",
    "papermill",
    "matplotlib",
    "scipy",  # the methods text relies on these too: calibration, its metrics
    "pillow",
    "ImageHash",  # the perceptual hash that keeps near-duplicates in one split
    "krippendorff",
)


REPORT_NOTEBOOK = "06_report"  # exported, code hidden, to <run>/report.html
REFUSED = 2  # the exit status of a command refused before any work


@dataclass(frozen=True)
class Stage:
    """One papermill execution: a notebook, maybe once per model."""

    notebook: Path
    model: str | None = None

    @property
    def name(self) -> str:
        """File stem of the executed copy, e.g. 04_train.custom_cnn."""
        return self.notebook.stem + (f".{self.model}" if self.model else "")


def notebook_parameters(path: Path) -> set[str]:
    """Names declared in a notebook's parameters cell (papermill passes only those)."""
    import papermill as pm

    return set(pm.inspect_notebook(str(path)).keys())


def plan_stages(models: list[str], notebooks_dir: Path | None = None) -> list[Stage]:
    """Numbered notebooks in order; one that declares `model` runs once per model."""
    notebooks_dir = notebooks_dir or paths.NOTEBOOKS_DIR  # read now, so tests can point it
    stages: list[Stage] = []
    for nb in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb")):
        if "model" in notebook_parameters(nb):
            stages += [Stage(nb, m) for m in models]
        else:
            stages.append(Stage(nb))
    return stages


# Parameters with flags of their own (or set per stage by the runner): --set leaves them alone.
RESERVED_PARAMETERS = frozenset(
    {"run_dir", "profile", "seed", "data", "test_data", "model", "folds", "fold"}
)


@dataclass(frozen=True)
class Setting:
    """One --set: a notebook parameter's value, for the stages whose name starts with `target`
    (every stage declaring it when target is empty)."""

    target: str
    name: str
    value: Any

    @property
    def key(self) -> str:
        """How the manifest records it: `04:batch_size` or `learning_rate`."""
        return f"{self.target}:{self.name}" if self.target else self.name


def parse_setting(text: str) -> Setting:
    """`[STAGE:]NAME=VALUE`, the value a Python literal (0.002, True, {'noise_p': 0.3}) or else
    the text itself (cosine)."""
    import ast

    head, sep, raw = text.partition("=")
    target, _, name = head.rpartition(":")
    if not sep or not name.strip().isidentifier():
        raise ConfigError(
            f"--set {text}: expected NAME=VALUE or STAGE:NAME=VALUE, e.g. learning_rate=0.002 "
            "or 04:batch_size=128"
        )
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = raw.strip()
    try:  # as the manifest will hold it (a tuple becomes a list), so a resume compares alike
        value = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise ConfigError(
            f"--set {text}: {type(value).__name__} values cannot be recorded in the manifest; "
            "use numbers, text, True/False/None, lists or dicts"
        ) from None
    return Setting(target.strip(), name.strip(), value)


def check_settings(settings: list[Setting], stages: list[Stage]) -> None:
    """Each --set names a parameter some stage declares (a typo is caught before any work, with
    the closest names), not one with a flag of its own, and a stage that exists."""
    by_notebook = {nb: notebook_parameters(nb) for nb in {stage.notebook for stage in stages}}
    declared = {stage.name: by_notebook[stage.notebook] for stage in stages}
    for setting in settings:
        if setting.name in RESERVED_PARAMETERS:
            flag = {"model": "--models", "fold": "--fold or --folds", "folds": "--folds"}.get(
                setting.name, f"--{setting.name.replace('_', '-')}"
            )
            raise ConfigError(f"--set {setting.key}: {setting.name} is set with {flag}")
        chosen = [n for n in declared if n.startswith(setting.target)]
        if not chosen:
            raise ConfigError(
                f"--set {setting.key}: no stage starts with {setting.target!r}; the stages are "
                f"{', '.join(declared)}"
            )
        names = set().union(*(declared[n] for n in chosen))
        if setting.name not in names:
            hint = did_you_mean(setting.name, names)
            where = f"the {setting.target} stages" if setting.target else "any notebook"
            raise ConfigError(f"--set {setting.key}: not a parameter of {where}{hint}")


def stage_settings(stage: Stage, settings: list[Setting]) -> dict[str, Any]:
    """The --set values this stage takes: those aimed at it, a stage-named one over a plain one."""
    ordered = sorted(settings, key=lambda s: len(s.target))  # the most specific target wins
    return {s.name: s.value for s in ordered if stage.name.startswith(s.target)}


def only_stages(only: str, stages: list[Stage]) -> list[Stage]:
    """The stages of the notebooks --only names (by prefix), or a ConfigError listing them."""
    prefixes = tuple(s.strip() for s in only.split(",") if s.strip())
    known = list(dict.fromkeys(s.notebook.stem for s in stages))
    unmatched = [p for p in prefixes if not any(k.startswith(p) for k in known)]
    if unmatched or not prefixes:
        missing = ", ".join(unmatched) or "(nothing)"
        raise ConfigError(
            f"--only {only}: no notebook starts with {missing}; the notebooks are "
            f"{', '.join(known)}"
        )
    return [s for s in stages if s.notebook.name.startswith(prefixes)]


def stage_status(manifest: dict[str, Any], stage: Stage) -> str | None:
    """ok, failed, interrupted or outdated as the manifest records it; None: it never ran."""
    return manifest.get("stages", {}).get(stage.name, {}).get("status")


def check_first_stage(only: str, plan: list[Stage], chosen: list[Stage], manifest: dict[str, Any]
                      ) -> None:  # fmt: skip
    """--only without the first notebook reads the records it writes: so it must have finished
    in the run (refused here, not in a kernel over a missing records file)."""
    first = plan[0]
    if first in chosen or stage_status(manifest, first) == "ok":
        return
    number = first.notebook.stem.partition("_")[0]
    if not manifest:
        raise ConfigError(
            f"--only {only}: a new run has no records yet: --only must include {number}"
        )
    raise ConfigError(
        f"--only {only}: {first.name} has not finished in this run, so it has no records yet: "
        f"--only must include {number}"
    )


def choose_stages(args: argparse.Namespace, plan: list[Stage], manifest: dict[str, Any],
                  going_on: bool) -> list[Stage]:  # fmt: skip
    """The stages this call runs: those --only names (on a resume without --only, those of the
    --only the stopped command had), and which of them run even if done (args.rerun): a resume
    with --only runs the stages it names again, unless it is a series' member going on with the
    --only of a series that stopped."""
    given = args.only
    args.only_recorded = args.resume and not given and bool(manifest.get("only"))
    args.only = given or (manifest.get("only") if args.only_recorded else "")
    # stages a series' --resume --only marked to run again, before a stop kept them from it
    args.rerun = {name for name, record in manifest.get("stages", {}).items()
                  if isinstance(record, dict) and record.get("rerun")}  # fmt: skip
    if not args.only:
        return plan
    chosen = only_stages(args.only, plan)
    check_first_stage(args.only, plan, chosen, manifest)
    if args.resume and given and not going_on:
        args.rerun |= {stage.name for stage in chosen}
    return chosen


def depends_on(later: Stage, earlier: Stage) -> bool:
    """Whether `later` reads what `earlier` writes: a stage for all models feeds every stage
    after it, and a model's stage that model's later stages and those for all models."""
    return earlier.model is None or later.model is None or earlier.model == later.model


def mark_outdated(manifest: dict[str, Any], plan: list[Stage], ran: Stage) -> set[str]:
    """Finished stages after `ran` that read what it writes are done no longer (their inputs
    change): they run again, in this call or the next --resume. Returns their names."""
    later = plan[plan.index(ran) + 1 :] if ran in plan else []
    names = {s.name for s in later if depends_on(s, ran) and stage_status(manifest, s) == "ok"}
    for name in names:
        manifest["stages"][name]["status"] = "outdated"
    return names


def announce_stage(args: argparse.Namespace, stage: Stage, head: str, status: str | None,
                   outdated: set[str]) -> str:  # fmt: skip
    """The line a stage starts with: why it runs again, where it had finished before."""
    if status == "outdated" and stage.name in outdated:
        return f"{head}: runs again: an earlier stage ran in this resume"
    if status in ("ok", "outdated") and stage.name in args.rerun:
        return f"{head}: runs again (--only names it)"
    if status == "outdated":
        return f"{head}: runs again: an earlier stage ran after it had finished"
    return f"{head} ..."


def restart(stage: Stage, status: str | None, rerun: set[str]) -> dict[str, Any]:
    """resume=False for a finished stage --only runs again, so a training starts over rather than
    giving back the model it made; an interrupted one (any other status) goes on from its last
    checkpoint. A --set resume value still wins; stages that declare no `resume` ignore it."""
    return {"resume": False} if status in ("ok", "outdated") and stage.name in rerun else {}


def print_resume_hint(args: argparse.Namespace, run_dir: Path) -> None:
    """The command that goes on with a stopped run (its --only too: the manifest keeps it),
    quoted for the shell, so a folder with spaces pastes as one argument; a series' member
    leaves it to the series, whose own command goes on with every member."""
    if args.member:
        return
    command = run_all_command(["--resume", "--run-dir", str(run_dir)])
    if args.only:
        command += f"  # the --only {args.only} stages left"
    print(f"[run_all] resume with: {command}", file=sys.stderr)


def print_new_run_hint(args: argparse.Namespace, manifest: dict[str, Any], run_dir: Path,
                       stage: Stage) -> None:  # fmt: skip
    """After a stage failed in its own cell before records.parquet was written (01 on data it
    cannot read, most often), the run has nothing to go on from, and a resume keeps its data:
    the command that starts a new run
    as this one was started (in a new folder), once the data is mended; a series' member leaves
    it to the series."""
    if args.member:
        return
    words = repeat_options(manifest)
    if args.only:
        words += ["--only", args.only]
    print(
        f"[run_all] {stage.name} wrote no records, so there is no run to resume: once the data "
        f"is mended (or other --data named), start a new one: {run_all_command(words)}  "
        f"# in a new reports/<time>/ folder; {shlex.quote(str(run_dir))} stays as it is",
        file=sys.stderr,
    )


def setting_text(key: str, value: Any) -> str:
    """A --set value as text that parse_setting reads back as the same value: text as it is
    where it reads as text (flip), else the Python literal ('1.5', 0.002, {'noise_p': 0.3})."""
    if isinstance(value, str) and parse_setting(f"{key}={value}").value == value:
        return value
    return repr(value)


def repeat_command(manifest: dict[str, Any], run_dir: Path) -> str:
    """The one command that makes the run as it stands, quoted for the shell: its profile, data,
    test sets, models, seed, fold and --set values as the manifest holds them after every
    resume (the first command, `command`, may name fewer models or other values)."""
    return shlex.join(["./run_all.sh", *repeat_options(manifest), "--run-dir", str(run_dir)])


def repeat_options(manifest: dict[str, Any]) -> list[str]:
    """The options of repeat_command but --run-dir."""
    words = ["--profile", str(manifest["profile"]["name"])]
    if not manifest["data"].get("demo"):  # the demo set is made again from profile and seed
        words += ["--data", str(manifest["data"]["path"])]
    for source in test_sets(manifest.get("test_data")):
        words += ["--test-data", source]
    words += ["--models", ",".join(manifest["models"]), "--seed", str(manifest.get("seed", 0))]
    if fold := manifest_fold(manifest):
        words += ["--fold", f"{fold[0]}/{fold[1]}"]
    for key, value in (manifest.get("parameters") or {}).items():
        words += ["--set", f"{key}={setting_text(key, value)}"]
    return words


def run_all_command(argv: list[str], cwd: Path | None = None) -> str:
    """run_all.sh with these arguments, quoted for the shell, as it runs from the folder the user
    is in (cwd): `./run_all.sh` in the project's folder, else the script's path, relative where
    the project is below that folder, so a printed command pastes back from where it was run."""
    root = paths.REPO_ROOT.resolve()
    try:
        here = (cwd or Path.cwd()).resolve()
    except OSError:  # the folder the run started in is gone
        here = Path(root.anchor)
    script = root / "run_all.sh"
    if here == root:
        head = "./run_all.sh"
    elif root.is_relative_to(here) and here != Path(here.anchor):
        head = str(script.relative_to(here))
    else:
        head = str(script)
    return shlex.join([head, *argv])


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide results, for the manifest."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def prepare_run_dir(run_dir: str | None, resume: bool, only: str = "") -> Path:
    """A new folder by default; an existing one only when resuming it, never overwritten."""
    if not run_dir:
        if resume:
            raise ConfigError("--resume needs --run-dir naming the run to continue")
        return RunFolder.new().root
    path = Path(run_dir).expanduser().resolve()
    if not resume:
        refuse_existing(path, only)
    elif not path.is_dir() and path.exists():
        raise ConfigError(f"--run-dir {path} is a file, not a folder")
    if resume and not (path / "manifest.json").exists():
        raise ConfigError(f"{path} has no manifest.json, so there is no run to resume")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the run folder {path} ({exc.strerror or exc})") from exc
    return path


def refuse_existing(path: Path, only: str = "") -> None:
    """A new run's folder: none yet, or an empty one (earlier runs are never overwritten)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--run-dir {path} is a file, not a folder")
    if path.exists() and any(path.iterdir()):
        what = f"run the --only {only} stages again in it" if only else "continue that run"
        raise ConfigError(
            f"{path} already exists and is not empty; add --resume to {what}, "
            "or choose a new --run-dir (earlier runs are never overwritten)"
        )


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run to resume; a damaged one is a ConfigError, not a traceback."""
    path = run_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        _ = manifest["profile"]["name"], manifest["models"], manifest["data"]["path"]  # needed
        manifest.setdefault("stages", {})
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"{path} is damaged, so the run cannot be resumed ({exc!r}); start a new run instead"
        ) from exc
    return manifest


def run_settings(args: argparse.Namespace, manifest: dict[str, Any], plan: list[Stage]
                 ) -> list[Setting]:  # fmt: skip
    """The run's --set values: as given, or on a resume the manifest's with the given ones over
    them. A value that changes for a finished stage would mix two experiments in one run
    folder, and is refused; for stages not yet done (a run stopped by a bad value) it is taken,
    and args.notes gets the line that says so, printed once every check has passed."""
    given = [parse_setting(text) for text in args.set]
    check_settings(given, plan)  # a mistyped name is refused before any value is taken
    if not args.resume:
        return given
    started = manifest.get("parameters") or {}
    merged = {**started, **{s.key: s.value for s in given}}
    for key, value in merged.items():
        if key in started and started[key] == value:
            continue
        setting = Setting(*key.rpartition(":")[::2], value)
        finished = [
            stage.name
            for stage in plan
            if stage_status(manifest, stage) == "ok"
            and stage.name.startswith(setting.target)
            and setting.name in notebook_parameters(stage.notebook)
        ]
        was = f"--set {key}={started[key]!r}" if key in started else f"no --set {key}"
        if finished:
            raise ConfigError(
                f"{args.run_dir} was started with {was}, and {', '.join(finished)} finished "
                "with it; a resume keeps the values of finished stages (leave that --set out, "
                "or start a new run)"
            )
        instead = f"in place of {key}={started[key]!r}" if key in started else "(new)"
        args.notes.append(f"[run_all] --set {key}={value!r} {instead}, for the stages not yet done")
    manifest["parameters"] = merged
    return [Setting(*key.rpartition(":")[::2], value) for key, value in merged.items()]


def check_values(profile: str, stages: list[Stage], settings: list[Setting],
                 manifest: dict[str, Any], rerun: set[str]) -> None:  # fmt: skip
    """The --set values of every stage not yet done (or to run again), checked as its notebook
    checks them (an unknown optimizer or tta), so a bad one is refused now, not after the stages
    before it, nor on the --resume that runs the stages an --only left out."""
    from helpers.run import values  # the checks import their modules: only with --set

    for stage in stages:
        if stage_status(manifest, stage) == "ok" and stage.name not in rerun:
            continue
        declared = notebook_parameters(stage.notebook)
        given = {k: v for k, v in stage_settings(stage, settings).items() if k in declared}
        try:
            values.check_values(profile, stage.notebook.stem, stage.model, given)
        except (ConfigError, DataError) as exc:  # DataError: a path it names is not there
            raise ConfigError(f"--set for {stage.name}: {exc}") from None


# Run apart (python -c): resolving an entry imports Keras, which the runner holds only where
# --set values aim at notebook 04 (its TrainConfig checks them); a plain run starts at once.
ENTRY_CHECK = """import sys
from helpers.core.errors import ConfigError
from helpers.models import registry
try:
    for name in sys.argv[1:]:
        registry.check(name)
except ConfigError as exc:
    sys.exit(f"error: {exc}")
"""


def check_entries(stages: list[Stage], manifest: dict[str, Any], rerun: set[str]) -> None:
    """The registry entries of the models this call trains or scores, resolved before any work:
    a mistyped `builder` or `preprocess` is one ConfigError naming the entry and the field, not
    an AttributeError from notebook 04 after 01 and 03 ran."""
    models = entry_models(stages, manifest, rerun)
    if models and (problem := entry_problem(models)):
        raise ConfigError(problem)


# Said before the checks that read the notebooks (papermill) and the models (TensorFlow): tens of
# seconds on a busy CPU, silent otherwise.
CHECKING = (
    "checking the notebooks, models and settings (loads papermill and TensorFlow: up to a minute "
    "on a busy CPU) ..."
)


def entry_models(stages: list[Stage], manifest: dict[str, Any], rerun: set[str]
                 ) -> tuple[str, ...]:  # fmt: skip
    """The models this call trains or scores: those whose registry entries are checked."""
    return tuple(
        dict.fromkeys(
            s.model
            for s in stages
            if s.model and (stage_status(manifest, s) != "ok" or s.name in rerun)
        )
    )


@functools.cache
def entry_problem(models: tuple[str, ...]) -> str | None:
    """What is wrong with these models' registry entries, checked in a process of their own
    (with this process's `helpers`, as the kernels get it); None when each resolves."""
    done = subprocess.run(
        [sys.executable, "-c", ENTRY_CHECK, *models],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": kernel_pythonpath()},
        check=False,
    )
    if done.returncode == 0:
        return None
    said = [line for line in done.stderr.splitlines() if line.strip()]
    last = said[-1] if said else f"exit status {done.returncode}"
    if last.startswith("error: "):
        return last.removeprefix("error: ")
    return f"checking the registry entries of {', '.join(models)}: {last}"


def kernel_pythonpath() -> str:
    """PYTHONPATH for a notebook kernel (started in notebooks/) or a check run apart: the folder
    this process imported `helpers` from first, then the caller's own entries made absolute, so
    the kernel runs the code that started it, not another copy that an editable install of a
    shared virtual environment, or a relative entry read from another folder, would give it."""
    import helpers

    own = Path(helpers.__file__).resolve().parent.parent
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    installed = {str(Path(p).resolve()) for p in site.getsitepackages()}
    first = [] if str(own) in installed else [str(own)]  # never ahead of the standard library
    return os.pathsep.join(dict.fromkeys([*first, *(str(Path(p).resolve()) for p in given)]))


def check_resume(args: argparse.Namespace, manifest: dict[str, Any], run_dir: Path) -> None:
    """A resume continues the run as it was started: other --test-data, --seed or --fold would
    mix two experiments in one run folder (the data: check_data, once the cheap checks pass)."""
    started = test_sets(manifest.get("test_data"))
    if args.test_data and resolved(args.test_data) != started:
        raise ConfigError(
            f"{run_dir} was started with --test-data {', '.join(started) or '(none)'}; a "
            "resume keeps it (leave --test-data out, or start a new run)"
        )
    if args.seed is not None and args.seed != manifest.get("seed", 0):
        raise ConfigError(
            f"{run_dir} was started with --seed {manifest.get('seed', 0)}; a resume "
            "keeps it (leave --seed out, or start a new run)"
        )
    if args.fold and parse_fold(args.fold) != manifest_fold(manifest):
        started = manifest_fold(manifest)
        shown = f"--fold {started[0]}/{started[1]}" if started else "no --fold"
        raise ConfigError(
            f"{run_dir} was started with {shown}; a resume keeps it (leave --fold out, or "
            "start a new run)"
        )


def check_data(args: argparse.Namespace, manifest: dict[str, Any], run_dir: Path) -> str:
    """A resume's data is the run's: the same sha256 as the manifest's, where it was or where
    --data names a copy of it (hashed once, after every cheap check: a large zip takes seconds).
    Returns the line to print when the run goes on with a copy ("" otherwise)."""
    if args.data and str(Path(args.data).expanduser().resolve()) != manifest["data"]["path"]:
        return move_data(args.data, manifest, run_dir)
    data, sha256 = Path(manifest["data"]["path"]), manifest["data"].get("sha256")
    if not data.exists():
        where = f"; give --data naming a copy of it (sha256 {sha256})" if sha256 else ""
        raise ConfigError(f"{run_dir} was started on {data}, which no longer exists{where}")
    if sha256 not in (None, paths.data_fingerprint(data)):
        raise ConfigError(
            f"{data} has changed since {run_dir} was started (its sha256 differs "
            "from the manifest's); start a new run on the new data"
        )
    return ""


def move_data(given: str, manifest: dict[str, Any], run_dir: Path) -> str:
    """A resume's --data at another path: the same bytes (the manifest's sha256) moved or copied
    there are taken, and the new path recorded; other data would mix two experiments. Returns
    the line that says so, printed once the run goes on."""
    started, sha256 = manifest["data"]["path"], manifest["data"].get("sha256")
    path = Path(given).expanduser().resolve()
    if not sha256:
        raise ConfigError(
            f"{run_dir} was started with --data {started}; a resume keeps it "
            "(leave --data out, or start a new run)"
        )
    if not path.exists():
        raise ConfigError(f"--data {given}: no such file or folder")
    found = paths.data_fingerprint(path)
    if found != sha256:
        raise ConfigError(
            f"{run_dir} was started with --data {started} (sha256 {sha256}); --data {path} has "
            f"sha256 {found}, so it is other data: a resume keeps the run's (start a new run on "
            "this data)"
        )
    manifest["data"]["path"] = str(path)
    return (
        f"[run_all] --data {path} has the sha256 of {started}, which the run started on: the "
        "run goes on with it, and the manifest records its path"
    )


def test_sets(value: str | list[str] | None) -> list[str]:
    """The external test sets of a manifest: a list (one path in manifests of older runs)."""
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def resolved(paths: list[str]) -> list[str]:
    """Absolute paths, in the order given, each once."""
    return list(dict.fromkeys(str(Path(p).expanduser().resolve()) for p in paths))


def export_html(executed: Path, html_dir: Path) -> Path:
    """HTML copy of an executed notebook, readable without Jupyter; the run folder (html_dir's
    parent) and the project folder are taken out of the paths its text shows (shown_paths), in
    the notebook's text before it is rendered, so images and links stay as they are; each
    figure's title is its alt text, as in report.html (finish_export)."""
    import nbformat
    from nbconvert import HTMLExporter

    from helpers.reporting.html import finish_export

    html_dir.mkdir(exist_ok=True)
    nb = nbformat.read(executed, as_version=4)
    for cell in nb.cells:
        cell.source = shown_paths(cell.source, html_dir.parent)
        for output in cell.get("outputs", []):
            shown_output(output, html_dir.parent)
    body, _ = HTMLExporter().from_notebook_node(nb)
    body = finish_export(body, nb)
    return write_text(html_dir / f"{executed.stem}.html", body)  # no half file on a full disk


def shown_output(output: Any, run_dir: Path) -> None:
    """One notebook output with shown_paths applied to its text (stream text, text/* data, an
    error's message and traceback); images and other data are left as they are."""
    if "text" in output:
        output["text"] = shown_paths(output["text"], run_dir)
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/") and isinstance(value, str):
            output["data"][mime] = shown_paths(value, run_dir)
    if "evalue" in output:
        output["evalue"] = shown_paths(output["evalue"], run_dir)
    if "traceback" in output:
        output["traceback"] = [shown_paths(line, run_dir) for line in output["traceback"]]


# data: URIs and URLs (scheme://...): never rewritten, since their text is not a path here.
_NOT_PATHS = re.compile(r"((?:\bdata:[^\s\"'<>(),;]*[;,]|\b[A-Za-z][\w+.-]*://)[^\s\"'<>()]*)")


def shown_paths(text: str, run_dir: Path) -> str:
    """Text with this machine's folders left out of the paths in it: relative to the project
    where inside it, else from the run folder's name on, so an HTML copy sent to someone shows
    reports/<run>/... or <run>/..., not /home/<user>/...

    A folder is taken out only where a path starts with it (not inside a longer name or a URL),
    data: URIs and URLs are left alone, and a root such as / or C:\\ is never taken out."""
    run = run_dir.resolve()
    roots = [paths.REPO_ROOT.resolve()]
    if not run.is_relative_to(roots[0]):
        roots.insert(0, run.parent)
    patterns = [
        re.compile(rf"(?<![\w/\\.~-]){re.escape(str(root))}[/\\]")
        for root in roots
        if root != Path(root.anchor)
    ]
    parts = _NOT_PATHS.split(text)
    for i in range(0, len(parts), 2):  # the odd parts are the URIs and URLs split out
        for pattern in patterns:
            parts[i] = pattern.sub("", parts[i])
    return "".join(parts)


def export_stage(stage: Stage, out: Path, run_dir: Path) -> Path | None:
    """An executed notebook's HTML copy in <run>/html/; for the report notebook also the
    self-contained <run>/report.html (returned), checked in Chromium where one is installed."""
    export_html(out, run_dir / "html")
    if stage.notebook.stem != REPORT_NOTEBOOK:
        return None
    from helpers.reporting.html import export_report

    report = export_report(out, run_dir / "report.html", title=f"Report: {run_dir.name}")
    print(f"[run_all] report: {report}")
    check_in_browser(RunFolder(run_dir))
    return report


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Notebook 06 executed on a run as ./run_all.sh executes it, then exported to
    <run>/report.html and html/06_report.html: the report of a run whose notebooks ran by hand.
    Its kernel messages go to <run>/logs/06_report.log. A --seeds or --folds series' folder is
    refused, naming its runs: each has its own report (the series' summary is written by
    ./run_all.sh)."""
    run = RunFolder.resolve(run_dir)
    members = series_members(run.root)
    if members:
        runs = " ".join(shlex.quote(str(m)) for m in members)
        raise ConfigError(
            f"{run.root} holds a series of runs, not one run: give one of its runs: {runs}"
        )
    stage = Stage(paths.NOTEBOOKS_DIR / f"{REPORT_NOTEBOOK}.ipynb")
    manifest = read_json(run.manifest) if run.manifest.is_file() else {}
    params = {"run_dir": str(run.root), "seed": manifest.get("seed", 0)}
    out, log = run.root / "notebooks" / f"{stage.name}.ipynb", run.logs_dir / f"{stage.name}.log"
    try:
        with stage_output(run.root, stage, quiet=True):
            execute_stage(stage, run.root, params, log_output=False)
    except Exception as exc:  # papermill raises its own error type per failing cell
        logged = log_traceback(log, exc)
        raise ConfigError(describe_failure(stage, out, exc, log if logged else None)) from exc
    export_stage(stage, out, run.root)
    return run.report


def execute_stage(
    stage: Stage,
    run_dir: Path,
    params: dict[str, Any],
    log_output: bool,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Run one notebook with papermill; the executed copy lands in <run>/notebooks/. settings:
    --set values, passed where the notebook declares them."""
    import papermill as pm

    declared = notebook_parameters(stage.notebook)
    merged = {**params, "model": stage.model, **(settings or {})}
    given = {k: v for k, v in merged.items() if k in declared}
    out = run_dir / "notebooks" / f"{stage.name}.ipynb"
    out.parent.mkdir(exist_ok=True)
    log = RunFolder(run_dir).logs_dir / f"{stage.name}.log"
    kernel = {RUNNER_ENV: str(run_dir), "PYTHONPATH": kernel_pythonpath()}
    before = {name: os.environ.get(name) for name in kernel}
    os.environ.update(kernel)  # 01 may write into the folder made for it; this helpers imported
    try:
        with cell_output_shown(log if log_output else None):
            pm.execute_notebook(
                str(stage.notebook),
                str(out),
                parameters=given,
                kernel_name="python3",
                cwd=str(stage.notebook.parent),
                # a bar redraws its line with carriage returns: on a terminal only, so the
                # output piped to a file is one line per cell's line
                progress_bar=log_output and stderr_is_terminal(),
                log_output=log_output,
            )
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return out


def stderr_is_terminal() -> bool:
    """Whether the standard error stream is a terminal (not a file, a pipe or a closed one)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


class _Lines(logging.Formatter):
    """A cell's output as it came: its own line ends, none added between two outputs."""

    def format(self, record: logging.LogRecord) -> str:
        """The message less the newline that ends it (the handler adds one)."""
        return super().format(record).rstrip("\n")


@contextlib.contextmanager
def cell_output_shown(log: Path | None) -> Iterator[None]:
    """With --log-output (log given), papermill's logger, which gets each cell's output at INFO,
    is printed to the terminal, as papermill's own command line sets it up, and appended to the
    stage's log; the logger is put back after. Without it nothing changes: a run stays quiet."""
    if log is None:
        yield
        return
    logger = logging.getLogger("papermill")
    log.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.StreamHandler(sys.stderr), logging.FileHandler(log, encoding="utf-8")]
    before = logger.level, logger.propagate
    for handler in handlers:
        handler.setFormatter(_Lines("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # once, not again by a handler the root logger may have
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(before[0])
        logger.propagate = before[1]


@contextlib.contextmanager
def stage_output(run_dir: Path, stage: Stage, quiet: bool) -> Iterator[Path]:
    """While a stage runs, its kernel's stderr (TensorFlow, absl, converter and kernel warnings)
    goes to <run>/logs/<stage>.log instead of the terminal (unless not quiet), and the progress
    lines the kernel sends (helpers.core.progress) are printed as they come. Yields the log."""
    logs = RunFolder(run_dir).logs_dir
    logs.mkdir(parents=True, exist_ok=True)
    log, lines = logs / f"{stage.name}.log", logs / f"{stage.name}.progress"
    lines.write_text("")
    stop = threading.Event()

    def follow() -> None:
        """Print each complete line the kernel appends, until the stage ends and all is read."""
        with open(lines, encoding="utf-8") as source:
            pending = ""
            while True:
                chunk = source.readline()
                if chunk:
                    pending += chunk
                    if pending.endswith("\n"):
                        print(f"[run_all]       {pending.rstrip()}", flush=True)
                        pending = ""
                elif stop.is_set():
                    return
                else:
                    time.sleep(0.25)

    follower = threading.Thread(target=follow, name="progress", daemon=True)
    follower.start()
    os.environ[PROGRESS_ENV] = str(lines)
    saved = None
    if quiet:
        sys.stderr.flush()
        saved = os.dup(2)
        target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(target, 2)
        os.close(target)
    try:
        yield log
    finally:
        if saved is not None:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            drop_kernel_notice(log)
        os.environ.pop(PROGRESS_ENV, None)
        stop.set()
        follower.join()


# What every kernel says as it starts (papermill's kernels talk over local TCP), and what one
# may say as it is shut down (jupyter_client interrupts a kernel before it asks it to stop, and
# an interrupt that lands between two messages is logged as an error): no message of the
# stage's own, so its log leaves them out.
KERNEL_NOTICE = "[IPKernelApp] WARNING | Kernel is running over TCP without encryption."
KERNEL_SHUTDOWN = "[IPKernelApp] ERROR | KeyboardInterrupt caught in kernel"
KERNEL_NOISE = (KERNEL_NOTICE, KERNEL_SHUTDOWN)


def drop_kernel_notice(log: Path) -> None:
    """A stage's log without the kernel's start-up notice and shut-down interrupt (KERNEL_NOISE),
    so what is left there is the stage's own; a log that cannot be read or written whole is
    left as it is."""
    with contextlib.suppress(OSError, DataError):
        text = log.read_text(encoding="utf-8", errors="surrogateescape")
        if any(noise in text for noise in KERNEL_NOISE):
            kept = [x for x in text.splitlines(keepends=True) if not x.startswith(KERNEL_NOISE)]
            write_text(log, "".join(kept), errors="surrogateescape")


def check_in_browser(run: RunFolder) -> None:
    """Open the report in headless Chromium (when installed), keep a screenshot, and say what a
    reader would meet: images that did not load, tables cut off, machine paths, tracebacks."""
    from helpers.reporting.browser import check_report, find_chromium

    if find_chromium() is None:
        return
    try:
        check = check_report(run.report, run.report_screenshot)
    except (DataError, OSError, subprocess.SubprocessError) as exc:
        print(f"[run_all] report not checked in Chromium: {exc}")
        return
    for problem in check.problems:
        print(f"[run_all] report, as Chromium shows it: {problem}")
    if not check.problems:
        print(
            f"[run_all] report checked in Chromium: {check.images} images loaded, nothing cut "
            f"off; screenshot {check.screenshot}"
        )


# What only a write fails with: a full disk, a quota reached, a read-only file system.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
# What a read fails with too (an unreadable --data): a write's error only inside the run folder.
DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def write_error(exc: BaseException, run_dir: Path) -> OSError | None:
    """The OSError of a file the runner itself could not write (a full disk, a read-only
    folder), as raised or behind write_json's DataError; None for any other failure (a kernel
    that cannot start is the stage's failure, said as such; a file outside the run folder that
    may not be read is named with its own error, not called unwritable)."""
    for error in (exc, exc.__cause__):
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            return error
        if isinstance(error, OSError) and error.errno in DENIED_ERRNOS and error.filename:
            name = Path(os.fsdecode(error.filename)).resolve()
            return error if name.is_relative_to(run_dir.resolve()) else None
    return None


def cannot_write(run_dir: Path, exc: OSError, stage: str = "") -> str:
    """One line naming the folder that could not be written, the cause and the stage if one ran:
    `02_eda failed: no space left on device in <run>`."""
    reason = exc.strerror or str(exc)
    name = Path(os.fsdecode(exc.filename)) if exc.filename else run_dir
    folder = run_dir if name.resolve().is_relative_to(run_dir.resolve()) else name.parent
    if stage:
        return f"{stage} failed: {reason[:1].lower()}{reason[1:]} in {folder}"
    if folder == run_dir:
        return f"cannot write to the run folder {run_dir} ({reason})"
    return f"cannot write {name} ({reason})"


def describe_failure(stage: Stage, out: Path, exc: Exception, log: Path | None = None) -> str:
    """One paragraph naming the notebook, the cell and the error, instead of a traceback, and
    where the traceback is: the stage's log as plain text (log, where it was written there),
    the executed notebook."""
    cell = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    if log is not None:
        return (
            f"Stage {stage.name} failed in {where}: {ename}: {evalue}\n"
            f"The traceback, as plain text: {shlex.quote(str(log))}; the executed notebook: "
            f"{shlex.quote(str(out))}"
        )
    return (
        f"Stage {stage.name} failed in {where}: {ename}: {evalue}\n"
        f"The executed notebook, with the full traceback, is {shlex.quote(str(out))}"
    )


# A terminal's colour and cursor codes, as IPython colours a traceback with them.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def log_traceback(log: Path, exc: BaseException) -> bool:
    """The failing cell's traceback (or, where the stage failed outside a cell, the error's own)
    appended to the stage's log as plain text, the colour codes taken out, so it is read
    without Jupyter; False where the log cannot be written."""
    import traceback

    frames = getattr(exc, "traceback", None)
    if isinstance(frames, list) and frames:
        text = "\n".join(str(frame) for frame in frames)
    else:
        text = "".join(traceback.format_exception(exc))
    cell = getattr(exc, "exec_count", None)
    head = f"The traceback of cell [{cell}]:" if cell is not None else "The traceback:"
    try:
        with open(log, "a", encoding="utf-8", errors="replace") as out:
            out.write(f"{head}\n{_ANSI.sub('', text).rstrip()}\n")
    except OSError:
        return False
    return True


RUN_ALL_EXAMPLES = """examples:
  ./run_all.sh --profile smoke                 # 4 models, 1 epoch at 48 px: 5-35 min on 2 cores
  ./run_all.sh --data data/affectnet.zip       # your own AffectNet-layout zip
  ./run_all.sh --resume --run-dir reports/exp1 # continue an interrupted run
  ./run_all.sh --models custom_cnn,mobilenetv2 # which models notebooks 04 and 05 run for
  ./run_all.sh --seeds 0,1,2                   # one run per seed, then mean ± sd of the metrics
  ./run_all.sh --set learning_rate=0.002       # any notebook parameter for this run"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help, its lines broken at spaces only: an option named in a help text
    (--run-dir) stays whole on one line, to be found and copied."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        """The help text as words wrapped to the width, never at a hyphen."""
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The run_all.sh command line (the README's "Two commands")."""
    p = argparse.ArgumentParser(
        prog="run_all.sh",
        allow_abbrev=False,  # --seeds passes options on to each seed's run by their full names
        description="Run every numbered notebook with papermill into a new run folder.",
        formatter_class=_HelpFormatter,
        epilog=RUN_ALL_EXAMPLES,
    )
    p.add_argument(
        "--profile",
        default="",
        help=f"one of {', '.join(config.PROFILES)} (default cpu, or the resumed run's)",
    )
    p.add_argument(
        "--data", default="", help="dataset source (zip or folder); default: the generated demo set"
    )
    p.add_argument(
        "--test-data",
        action="append",
        default=[],
        metavar="SOURCE",
        help="an external test set every model is also scored on; repeat it for several "
        "(default: none)",
    )
    p.add_argument(
        "--models",
        default="",
        help="comma-separated model names (default: the profile's, or the resumed run's)",
    )
    p.add_argument("--run-dir", default="", help="run folder (default: a new reports/<timestamp>/)")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="one seed for splits, augmentation and init (default 0, or the resumed run's)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="[STAGE:]NAME=VALUE",
        help="a notebook parameter for this run, e.g. learning_rate=0.002, "
        "\"augment={'noise_p': 0.3}\" or 04:batch_size=128 (the 04 stages only); repeat it "
        "(default: the profile's values)",
    )
    p.add_argument(
        "--seeds",
        default="",
        help="comma-separated seeds, e.g. 0,1,2: one run per seed in --run-dir/seed-<n>/, then "
        "each model's metrics as mean ± standard deviation over them (seeds.md, .csv, .tex); "
        "default: one run, seed --seed",
    )
    p.add_argument(
        "--folds",
        default="",
        metavar="K",
        help="k-fold cross-validation: K runs in --run-dir/fold-<i>/, each testing on one of K "
        "folds of all the data (a person's faces in one fold), then each model's metrics over "
        "every face and per fold (folds.md, .csv, .tex); default: none",
    )
    p.add_argument(
        "--fold",
        default="",
        metavar="I/K",
        help="one fold's run of a cross-validation, e.g. 2/5 (what --folds runs K times; "
        "default: none, the profile's own split)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --run-dir, skipping finished stages",
    )
    p.add_argument(
        "--only",
        default="",
        help="comma-separated notebook prefixes to run, e.g. 01,02 (default: every notebook, or "
        "the --only of a resumed run that stopped)",
    )
    p.add_argument(
        "--log-output", action="store_true", help="stream every cell's output to the terminal"
    )
    return p.parse_args(argv)


def parse_seeds(text: str) -> list[int]:
    """--seeds 0,1,2: two or more different whole numbers, or a ConfigError saying what is not."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(
            f"--seeds {text}: whole numbers separated by commas, e.g. 0,1,2"
        ) from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text}: two or more different seeds (one run: --seed N)")
    return seeds


def parse_folds(text: str) -> int:
    """--folds 5: a whole number of folds, 2 or more, or a ConfigError saying what is not."""
    try:
        folds = int(text)
    except ValueError:
        raise ConfigError(f"--folds {text}: a whole number of folds, e.g. 5 or 10") from None
    if folds < 2:
        raise ConfigError(f"--folds {text}: two folds or more (no cross-validation: leave it out)")
    return folds


def parse_fold(text: str) -> tuple[int, int]:
    """--fold 2/5: (fold, folds) with the fold in 1..folds, or a ConfigError saying what is not."""
    fold, sep, folds = text.partition("/")
    try:
        pair = (int(fold), int(folds))
    except ValueError:
        pair = (0, 0)
    if not sep or pair[1] < 2 or not 1 <= pair[0] <= pair[1]:
        raise ConfigError(f"--fold {text}: I/K with 1 <= I <= K and K >= 2, e.g. 2/5")
    return pair


def manifest_fold(manifest: dict[str, Any]) -> tuple[int, int] | None:
    """(fold, folds) of a run made with --fold, as its manifest records it; None otherwise."""
    fold = manifest.get("fold")
    return (int(fold["fold"]), int(fold["folds"])) if isinstance(fold, dict) else None


@dataclass(frozen=True)
class Series:
    """Runs of one command that differ in one option: seeds, or the folds of a
    cross-validation. Each member is (its folder's name, its label, its own options)."""

    what: str
    option: str
    members: list[tuple[str, str, list[str]]]
    replaced: frozenset[str]
    among: str  # "0, 1, 2" or "5": what "seed 1 of ..." and "fold 2 of ..." name


def member_argv(argv: list[str], series: Series, extra: list[str], run_dir: Path, resume: bool
                ) -> list[str]:  # fmt: skip
    """One member's own command line: the shared options, its own (--seed N, --fold I/K) and
    --run-dir (and --resume where its run was started)."""
    kept = without_options(argv, {series.option, "--run-dir", *series.replaced}, {"--resume"})
    return [*kept, *extra, "--run-dir", str(run_dir), *(["--resume"] * resume)]


def seed_series(seeds: list[int]) -> Series:
    """--seeds 0,1,2: one run per seed in seed-<n>/."""
    members = [(f"seed-{seed}", f"seed {seed}", ["--seed", str(seed)]) for seed in seeds]
    return Series("seeds", "--seeds", members, frozenset({"--seed"}), ", ".join(map(str, seeds)))


def fold_series(folds: int) -> Series:
    """--folds K: one run per fold in fold-<i>/, the seed shared (it draws the folds)."""
    members = [(f"fold-{i}", f"fold {i}", ["--fold", f"{i}/{folds}"]) for i in range(1, folds + 1)]
    return Series("folds", "--folds", members, frozenset({"--fold"}), str(folds))


def run_one(argv: list[str], rerun: bool = False) -> int:
    """One member's run, as ./run_all.sh with that command line would do it (a function of its
    own so tests can stand in for a whole run). rerun: its --only stages run again if done."""
    return main(argv, member=True, rerun=rerun)


def series_reruns(args: argparse.Namespace, series: Series, base: Path) -> bool:
    """Whether a series' --resume --only runs the stages it names again in every run, as one
    run's does: yes, unless a run stopped under that same --only (the command the stopped series
    printed, which goes on with it: the runs that finished it are not run again)."""
    if not (args.resume and args.only):
        return False
    for folder, _, _ in series.members:
        if (base / folder / "manifest.json").is_file():
            with contextlib.suppress(ConfigError):  # a damaged one: its own run refuses it
                if read_manifest(base / folder).get("only") == args.only:
                    return False
    return True


def mark_reruns(only: str, series: Series, base: Path) -> dict[Path, dict[str, Any]]:
    """Before a series' --resume --only runs its first member, the finished stages it names are
    marked outdated, flagged as --only's, in every member's manifest: a stop in one member then
    leaves them to run in the members after it, on the resume command the stop prints (a
    member goes on there, not running again what it finished). Every member's folder is locked
    first (one in use: a ConfigError, nothing marked). Returns each changed manifest as it was,
    for restore_reruns when the first member is refused before any work."""
    prefixes = tuple(p.strip() for p in only.split(",") if p.strip())
    runs = [base / folder for folder, _, _ in series.members]
    locks: list[_RunLock] = []
    before: dict[Path, dict[str, Any]] = {}
    try:
        for run in runs:
            if (run / "manifest.json").is_file():
                locks.append(lock_run_dir(run))
        for run in runs:
            if not (run / "manifest.json").is_file():
                continue
            with contextlib.suppress(ConfigError):  # a damaged one: its own run refuses it
                manifest = read_manifest(run)
                original = json.loads(json.dumps(manifest))
                named = [
                    name
                    for name, record in manifest["stages"].items()
                    if name.partition(".")[0].startswith(prefixes)
                    and isinstance(record, dict)
                    and record.get("status") == "ok"
                ]
                for name in named:
                    manifest["stages"][name].update(status="outdated", rerun=True)
                if named:
                    write_json(run / "manifest.json", manifest)
                    before[run] = original
    finally:
        for lock in locks:
            lock.close()
    return before


def restore_reruns(before: dict[Path, dict[str, Any]]) -> None:
    """The manifests mark_reruns changed, put back as they were."""
    for run, manifest in before.items():
        write_json(run / "manifest.json", manifest)


def _series_base(args: argparse.Namespace, series: Series) -> tuple[Path, bool]:
    """The folder that holds one run per member, and whether this call created it."""
    if not args.resume:
        existed = bool(args.run_dir) and Path(args.run_dir).expanduser().exists()
        return prepare_run_dir(args.run_dir, resume=False), not existed
    base = Path(args.run_dir).expanduser().resolve() if args.run_dir else None
    if base is None or not base.is_dir():
        raise ConfigError(
            f"--resume with {series.option} needs --run-dir naming the {series.what}' folder"
        )
    if (base / "manifest.json").exists():
        first = series.members[0][0].rpartition("-")[0]
        raise ConfigError(
            f"{base} is one run's folder; {series.option} resumes the folder holding {first}-N/"
        )
    return base, False


def series_of(args: argparse.Namespace) -> Series:
    """The series --seeds or --folds asks for, its options checked."""
    if args.seeds and args.folds:
        raise ConfigError("--seeds and --folds together are not supported: one or the other")
    if args.seeds:
        if args.seed is not None:
            raise ConfigError("--seeds runs one run per seed: leave out --seed")
        if args.fold:  # each seed deals other folds, so each would test other faces
            raise ConfigError("--seeds with --fold is not supported: each seed deals other folds")
        return seed_series(parse_seeds(args.seeds))
    if args.fold:
        raise ConfigError("--folds runs every fold: leave out --fold")
    return fold_series(parse_folds(args.folds))


def run_series(args: argparse.Namespace, argv: list[str]) -> int:
    """One run per member (seed, fold) in <run-dir>/<member>/, one after the other, then the
    summary over them; a failed member stops the rest, and the same command with --resume goes
    on from there."""
    try:
        series = series_of(args)
        base, created = _series_base(args, series)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED
    runs = []
    rerun = series_reruns(args, series, base)
    marked: dict[Path, dict[str, Any]] = {}
    if rerun:
        try:
            marked = mark_reruns(args.only, series, base)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return REFUSED
        print(f"[run_all] the --only {args.only} stages run again in every run of the series")
    for number, (folder, label, extra) in enumerate(series.members):
        run = base / folder
        started = args.resume and (run / "manifest.json").exists()
        print(f"[run_all] {label} of {series.among}: {run}", flush=True)
        code = run_one(member_argv(argv, series, extra, run, started), rerun)
        if code == REFUSED or (code and not (run / "manifest.json").exists()):
            # refused before any work (its folder in use by another run_all.sh, a --set it
            # keeps): the refusal says it all; nothing stopped, so nothing to go on with
            if number == 0:  # nothing ran in this call: the --only stages are as they were
                restore_reruns(marked)
            for empty in (run, base) if created else (run,):
                with contextlib.suppress(OSError):
                    empty.rmdir()  # only while empty
            return code
        if code:
            again = [*without_options(argv, {"--run-dir"}, {"--resume"}), "--run-dir", str(base)]
            hint = run_all_command([*again, "--resume"])
            print(f"[run_all] {label} stopped; go on with: {hint}", file=sys.stderr)
            if code > 128:  # stopped by a signal, as one run prints its folder then; failed: not
                print(base)
            return code
        runs.append(run)
    return summarise_series(args, series, runs, base)


def summarise_series(args: argparse.Namespace, series: Series, runs: list[Path], base: Path
                     ) -> int:  # fmt: skip
    """seeds.* or folds.* beside the runs, printed; a summary that cannot be made is one line."""
    # pandas and the metrics: after the runs
    if series.what == "seeds":
        from helpers.reporting.seeds import write_seeds as write
    else:
        from helpers.reporting.folds import write_folds as write
    try:
        written = write(runs, base)
    except (ConfigError, DataError) as exc:
        print(f"[run_all] no summary over the {series.what}: {exc}", file=sys.stderr)
        if args.only:  # --only may stop before notebook 05 on purpose: the runs are the result
            print(base)
        return 0 if args.only else 1
    print(written[1].read_text(encoding="utf-8"), end="")
    print(f"[run_all] over the {series.what}: {', '.join(str(p) for p in written)}")
    print(base)
    return 0


def main(argv: list[str] | None = None, member: bool = False, rerun: bool = False) -> int:
    """Validate everything first, then run the stages; the last line printed is the run folder
    (not after a failure: the error and the resume command end it).
    member: one run of a --seeds or --folds series, which prints the series' own resume command;
    rerun: the series' --resume --only runs the stages it names again (else a member goes on)."""
    args = parse_args(argv)
    args.member, args.going_on = member, member and not rerun
    if args.seeds or args.folds:
        return run_series(args, list(argv if argv is not None else sys.argv[1:]))
    run: Prepared | None = None
    try:
        try:
            with sigterm_as_interrupt():
                run = prepare(args)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return REFUSED
        except KeyboardInterrupt as stop:  # while the data is hashed or Keras imported
            with signals_held():  # prepare has released the lock; no stage ran, nothing to resume
                how = stop.how if isinstance(stop, Terminated) else "interrupted"
                print(f"[run_all] {how} before any work", file=sys.stderr)
                return stop_status(stop)
        run_dir = run.run_dir
        try:
            with sigterm_as_interrupt():
                try:
                    return run_stages(args, argv, run_dir, run.manifest, run.profile, run.models,
                                      run.stages, run.plan)  # fmt: skip
                except KeyboardInterrupt as stop:  # between stages, or a second signal
                    with signals_held():
                        return report_stop(args, run_dir, stop)
        except (OSError, DataError) as exc:  # a full disk, a vanished folder: say which file
            cause = write_error(exc, run_dir)
            where = (
                cannot_write(run_dir, cause)
                if cause is not None
                else str(exc)
                if isinstance(exc, DataError)
                else f"{exc.filename or run_dir}: {exc.strerror or exc}"
            )
            print(f"error: {where}", file=sys.stderr)
            if (run_dir / "manifest.json").exists():
                print_resume_hint(args, run_dir)
            return 1
    finally:
        if run is not None:
            run.lock.close()


@dataclass
class Prepared:
    """A run checked and ready: its folder (locked while stages run), its manifest (empty for a
    new run), profile and models, the stages this call runs and the run's whole plan."""

    run_dir: Path
    manifest: dict[str, Any]
    lock: _RunLock
    profile: config.Profile
    models: list[str]
    stages: list[Stage]
    plan: list[Stage]


# What of the notebooks runs on TensorFlow alone (training and scoring run on JAX too).
NEEDS_TENSORFLOW = "05's Grad-CAM and TFLite export, 07's heatmaps"
TENSORFLOW_NOTEBOOKS = ("05_", "07_")


def tensorflow_stages(stages: list[Stage], manifest: dict[str, Any], rerun: set[str]
                      ) -> list[Stage]:  # fmt: skip
    """The stages of this call that run on TensorFlow alone (05, 07) and will run: not done
    yet, named to run again, or after a stage that runs and feeds them (they turn outdated)."""
    pending = [s for s in stages if stage_status(manifest, s) != "ok" or s.name in rerun]
    return [
        stage
        for i, stage in enumerate(stages)
        if stage.notebook.name.startswith(TENSORFLOW_NOTEBOOKS)
        and (stage in pending or any(depends_on(stage, p) for p in pending if p in stages[:i]))
    ]


def check_backend(stages: list[Stage], manifest: dict[str, Any], rerun: set[str]) -> None:
    """A ConfigError, before any work, when a stage this call runs needs TensorFlow and Keras
    is set to another backend; stages that run on any backend (01-04, 06) are not refused."""
    needing = tensorflow_stages(stages, manifest, rerun)
    if needing:
        names = ", ".join(dict.fromkeys(s.notebook.stem for s in needing))
        keras_backend.need_tensorflow("./run_all.sh", f"{NEEDS_TENSORFLOW}; this call runs {names}")


def prepare(args: argparse.Namespace) -> Prepared:
    """Every check before any work, the cheap ones first: a resume's folder locked, then its
    options, --set and --only, and its data hashed last (a large zip takes seconds)."""
    manifest: dict[str, Any] = {}
    lock: _RunLock | None = None
    try:
        if args.resume:  # the run's own profile and models, unless the user names others
            run_dir = prepare_run_dir(args.run_dir, resume=True)
            lock = lock_run_dir(run_dir)
            manifest = read_manifest(run_dir)
            started = manifest["profile"]["name"]
            if args.profile and args.profile != started:
                raise ConfigError(
                    f"{run_dir} was started with --profile {started}; resume it "
                    "with that profile (or without --profile)"
                )
            args.profile, args.models = started, args.models or ",".join(manifest["models"])
            check_resume(args, manifest, run_dir)
        args.seed = manifest.get("seed", 0) if args.resume else (args.seed or 0)
        args.fold_pair = parse_fold(args.fold) if args.fold else manifest_fold(manifest)
        profile = config.get_profile(args.profile or "cpu")
        models = config.parse_models(args.models or ",".join(profile.models))
        for flag, value in (("--data", args.data), *(("--test-data", v) for v in args.test_data)):
            if value and not Path(value).expanduser().exists():
                raise ConfigError(f"{flag} {value}: no such file or folder")
        print(f"[run_all] {CHECKING}", flush=True)  # papermill, then TensorFlow: silent otherwise
        stages = plan_stages(models)
        if not stages:
            raise ConfigError(f"no notebooks to run in {paths.NOTEBOOKS_DIR}")
        args.notes = []  # what the run says it takes, once every check has passed
        args.settings = run_settings(args, manifest, stages)
        if not args.resume and args.run_dir:  # before what --only lacks: the folder's refusal
            refuse_existing(Path(args.run_dir).expanduser().resolve(), args.only)
        plan, stages = stages, choose_stages(args, stages, manifest, args.going_on)
        if args.settings:  # every stage of the run: one --only leaves out runs on a --resume
            check_values(profile.name, plan, args.settings, manifest, args.rerun)  # before Keras
        check_backend(stages, manifest, args.rerun)
        check_entries(stages, manifest, args.rerun)
        if args.resume and (moved := check_data(args, manifest, run_dir)):
            args.notes.append(moved)
        if not args.resume:
            run_dir = prepare_run_dir(args.run_dir, resume=False, only=args.only)
            lock = lock_run_dir(run_dir)
    except BaseException:
        if lock is not None:
            lock.close()
        raise
    assert lock is not None  # taken above, on either path
    return Prepared(run_dir, manifest, lock, profile, models, stages, plan)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a plain kill, `timeout`, a job scheduler's end of time), stopping as Ctrl-C does."""

    signum: int = signal.SIGTERM
    how: str = "stopped by SIGTERM"


class HungUp(Terminated):
    """SIGHUP (the terminal window closed, an ssh connection dropped), stopping as SIGTERM does."""

    signum = getattr(signal, "SIGHUP", signal.SIGTERM)
    how = "stopped by SIGHUP (the terminal closed)"


def _raise_terminated(signum: int, frame: object) -> None:
    """The SIGTERM and SIGHUP handler: stop the stage where it is, as Ctrl-C's
    KeyboardInterrupt does."""
    raise Terminated if signum == signal.SIGTERM else HungUp


def _stop_signals() -> list[signal.Signals]:
    """SIGTERM, and SIGHUP where the platform has it and it is not ignored (under nohup the
    run is meant to outlive the terminal)."""
    hangup = getattr(signal, "SIGHUP", None)
    wanted = [signal.SIGTERM]
    if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN:
        wanted.append(hangup)
    return wanted


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While stages run, SIGTERM and SIGHUP end the run as Ctrl-C does (the stage recorded as
    interrupted, the resume command printed) instead of killing it without a word; the handlers
    before are restored after. Signals reach the main thread only, so elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise_terminated) for signum in _stop_signals()}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """While a stop is recorded and said, a second Ctrl-C, SIGTERM or SIGHUP is ignored: it
    would cut the record short with a traceback. The handlers before are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = [signal.SIGINT, signal.SIGTERM, *[s for s in [getattr(signal, "SIGHUP", None)] if s]]
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


# What asyncio logs of a task collected unfinished or failed: after a stop, nbclient's task of
# the cell that was running (its kernel dies with the run: DeadKernelError), no news to a user.
ORPHANED_TASK = ("Task exception was never retrieved", "Task was destroyed but it is pending")


class _OrphanedTasks(logging.Filter):
    """Leaves out asyncio's records of tasks the stop left behind (ORPHANED_TASK)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record of an orphaned task, so it is never printed."""
        return not str(record.msg).startswith(ORPHANED_TASK)


def quiet_orphaned_tasks() -> None:
    """After a stop, the cell's task nbclient awaited is left behind and fails as its kernel
    dies; once collected (at exit, after the run folder was printed), asyncio would log it with
    a traceback. Its logger leaves such records out from then on."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _OrphanedTasks) for f in logger.filters):
        logger.addFilter(_OrphanedTasks())


def report_stop(args: argparse.Namespace, run_dir: Path, stop: KeyboardInterrupt,
                during: str = "") -> int:  # fmt: skip
    """What Ctrl-C, SIGTERM or SIGHUP prints, in a stage or between two: how it stopped, the
    command that goes on (once the run has a manifest) and the run folder; returns the exit
    status. A closed terminal may refuse the lines: the manifest has the stop recorded anyway."""
    how = stop.how if isinstance(stop, Terminated) else "interrupted"
    quiet_orphaned_tasks()  # the run folder stays the last line
    with contextlib.suppress(OSError):
        print(f"[run_all] {how}{f' during {during}' if during else ''}", file=sys.stderr)
        if (run_dir / "manifest.json").exists():
            print_resume_hint(args, run_dir)
        print(run_dir)
    return stop_status(stop)


def stop_status(stop: KeyboardInterrupt) -> int:
    """The exit status of a run stopped by Ctrl-C (130), SIGTERM (143) or SIGHUP (129), as a
    shell gives it."""
    return 128 + (stop.signum if isinstance(stop, Terminated) else signal.SIGINT)


class _RunLock:
    """An exclusive POSIX flock on the run folder itself (no lock file is written into it)."""

    def __init__(self, run_dir: Path):
        self.fd: int | None = None
        try:
            import fcntl
        except ImportError:  # Windows: no flock; two runs on one folder are the user's to avoid
            return
        self.fd = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise ConfigError(
                f"{run_dir} is in use by another run_all.sh; wait for it to "
                "finish (or choose another --run-dir)"
            ) from None

    def close(self) -> None:
        """Closing the descriptor releases the lock."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def lock_run_dir(run_dir: Path) -> _RunLock:
    """Held while stages run: a second run_all.sh on the same folder is refused instead of
    interleaving with the first."""
    return _RunLock(run_dir)


def run_stages(
    args: argparse.Namespace,
    argv: list[str] | None,
    run_dir: Path,
    manifest: dict[str, Any],
    profile: config.Profile,
    models: list[str],
    stages: list[Stage],
    plan: list[Stage] | None = None,
) -> int:
    """Write the manifest of a new run, then every stage not yet done; returns the exit code.
    plan: every stage of the run (stages: those --only chose), for what a rerun makes outdated."""
    plan = plan or stages
    manifest_path = run_dir / "manifest.json"
    if not args.resume:
        if args.data:
            data = Path(args.data).expanduser().resolve()
        else:
            if not config.demo_zip_path(profile.name, args.seed).exists():
                print(
                    f"[run_all] generating the demo dataset for profile {profile.name} "
                    "(once, then cached)"
                )
            try:
                # no bar: drawn outside a terminal it leaves a blank line
                data = config.ensure_demo_zip(profile.name, args.seed, progress=False)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    exc.strerror or str(exc),
                    str(config.demo_zip_path(profile.name, args.seed)),
                ) from exc
        manifest = {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": profile.to_dict(),
            "seed": args.seed,
            "models": models,
            "data": {
                "path": str(data),
                "sha256": paths.data_fingerprint(data),
                "demo": not args.data,
            },
            "test_data": resolved(args.test_data),
            "packages": package_versions(),
            **paths.source_version(),  # git_commit, and git_dirty: uncommitted changes
            "command": shlex.join(["./run_all.sh", *(argv if argv is not None else sys.argv[1:])]),
            "parameters": {setting.key: setting.value for setting in args.settings},
            "stages": {},
        }
        if args.fold_pair:
            manifest["fold"] = dict(zip(("fold", "folds"), args.fold_pair, strict=True))
        manifest["repeat_command"] = repeat_command(manifest, run_dir)
        write_json(manifest_path, manifest)
    manifest["models"] = models  # a resume may add models
    if args.only:  # so a resume goes on with these stages, not every one
        manifest["only"] = args.only
    if args.resume:  # and its data's new place, where it was moved, and what it changed
        command = shlex.join(["./run_all.sh", *(argv if argv is not None else sys.argv[1:])])
        manifest["resumed"] = [*manifest.get("resumed", []), command]
        manifest["repeat_command"] = repeat_command(manifest, run_dir)
        write_json(manifest_path, manifest)
    params = {
        "run_dir": str(run_dir),
        "profile": profile.name,
        "seed": manifest["seed"],
        "data": manifest["data"]["path"],
        "test_data": test_sets(manifest.get("test_data")),
    }
    if manifest_fold(manifest):
        params["fold"], params["folds"] = manifest_fold(manifest)

    print(f"[run_all] run folder: {run_dir}")
    for note in args.notes:  # a --set or the data taken, said once every check has passed
        print(note)
    if args.only_recorded:
        print(f"[run_all] going on with the --only {args.only} stages of the command that stopped")
    outdated: set[str] = set()  # finished stages that run again as an earlier one ran
    for i, stage in enumerate(stages, 1):
        head, status = f"[run_all] [{i}/{len(stages)}] {stage.name}", stage_status(manifest, stage)
        if status == "ok" and stage.name not in args.rerun:
            print(f"{head}: already done, skipped (--resume)")
            continue
        print(announce_stage(args, stage, head, status, outdated), flush=True)
        marked = mark_outdated(manifest, plan, stage)
        if marked:
            outdated |= marked
            write_json(manifest_path, manifest)
        t0 = time.perf_counter()
        out = run_dir / "notebooks" / f"{stage.name}.ipynb"
        log = RunFolder(run_dir).logs_dir / f"{stage.name}.log"
        try:
            with stage_output(run_dir, stage, quiet=not args.log_output):
                settings = {
                    **restart(stage, status, args.rerun),
                    **stage_settings(stage, args.settings),
                }
                out = execute_stage(stage, run_dir, params, args.log_output, settings)
            export_stage(stage, out, run_dir)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: record it, say how to go on
            with signals_held():
                manifest["stages"][stage.name] = {
                    "status": "interrupted",
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                write_json(manifest_path, manifest)
                return report_stop(args, run_dir, stop, stage.name)
        except Exception as exc:  # papermill raises its own error type per failing cell
            manifest["stages"][stage.name] = {
                "status": "failed",
                "seconds": round(time.perf_counter() - t0, 1),
            }
            # the runner's own write (or papermill's): the folder, not the notebook
            cause = write_error(exc, run_dir)
            try:
                write_json(manifest_path, manifest)
            except DataError:  # a full disk: the record is written where it still can be
                if cause is None:
                    raise
            if cause is not None:
                print(f"error: {cannot_write(run_dir, cause, stage.name)}", file=sys.stderr)
            else:
                written = log_traceback(log, exc)
                print(
                    f"[run_all] {describe_failure(stage, out, exc, log if written else None)}",
                    file=sys.stderr,
                )
            finished = any(
                isinstance(done, dict) and done.get("status") == "ok"
                for done in manifest.get("stages", {}).values()
            )
            if cause is None and not finished and not RunFolder(run_dir).records.is_file():
                print_new_run_hint(args, manifest, run_dir, stage)  # nothing to go on from
            else:
                print_resume_hint(args, run_dir)
            return 1
        seconds = round(time.perf_counter() - t0, 1)
        manifest["stages"][stage.name] = {"status": "ok", "seconds": seconds}
        write_json(manifest_path, manifest)
        print(f"[run_all] [{i}/{len(stages)}] {stage.name}: done in {seconds:.1f} s", flush=True)
    if manifest.pop("only", None):  # done: a later --resume goes on with every stage
        write_json(manifest_path, manifest)
    for text in closing_lines(args, run_dir, manifest, profile, stages, plan):
        print(text)
    print(run_dir)
    return 0


PREDICT_NOTEBOOK = "07_predict"  # draws its predictions on images in <run>/annotated/


def closing_lines(args: argparse.Namespace, run_dir: Path, manifest: dict[str, Any],
                  profile: config.Profile, stages: list[Stage], plan: list[Stage] | None = None
                  ) -> list[str]:  # fmt: skip
    """What a finished run ends with, before its folder: the HTML, what is out of date or not
    run yet (an --only run), why a one-epoch profile's models learned nothing (where a model's
    stage ran), and the files to open (the report, the predictor's images where 07 ran)."""
    from helpers.core.words import counted
    from helpers.evaluation.health import EXPECTED_THERE, one_epoch  # numpy: not for --help

    finished = f"all {counted(len(stages), 'stage')}" if len(stages) > 1 else counted(1, "stage")
    lines = [f"[run_all] {finished} finished; HTML in {run_dir / 'html'}"]
    again = run_all_command(["--resume", "--run-dir", str(run_dir)])
    left = [name for name, record in manifest["stages"].items() if record["status"] == "outdated"]
    if left:
        lines.append(
            f"[run_all] out of date, as stages before them ran again: {', '.join(left)}; "
            f"{again} runs them"
        )
    waiting = [s.name for s in plan or [] if stage_status(manifest, s) not in ("ok", "outdated")]
    if waiting:
        lines.append(
            f"[run_all] {counted(len(waiting), 'stage')} of the run not run yet "
            f"({', '.join(waiting)}); {again} runs them"
        )
    trained = any(s.model for s in stages)  # no model's stage ran: no model to have learned
    if trained and one_epoch(profile.epochs) and not any(s.name == "epochs" for s in args.settings):
        data = manifest["data"]  # the words from what the run read, demo set or not
        read = "the generated demo set" if data.get("demo") else Path(data["path"]).name
        lines.append(
            f"[run_all] profile {profile.name} trains one epoch (on {read} here): " + EXPECTED_THERE
        )
    if not left:  # the table as the report shows it; out of date, where stages wait to run
        lines += recap_lines(RunFolder(run_dir).results_csv)
    report = RunFolder(run_dir).report
    if report.is_file():
        lines.append(f"[run_all] report: {report}")
    annotated = run_dir / "annotated"
    if any(s.notebook.stem == PREDICT_NOTEBOOK for s in stages) and annotated.is_dir():
        lines.append(f"[run_all] the predictor's output: {annotated}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
