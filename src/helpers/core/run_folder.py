"""One run's folder: each stage asks it where things are instead of building paths.

The layout is a contract (DESIGN.md, "run folder"): notebooks, `./run_all.sh --resume`, the
report and the tests all read it, so it is written down once, here.

    run = RunFolder.resolve("")                # the newest run (create=True: a new one)
    run.model_path("custom_cnn")               # <run>/models/custom_cnn.keras
    run.metrics_path("custom_cnn", "ckplus")   # <run>/metrics/custom_cnn.ckplus.json
    run / "eda"                                # any other path inside the run
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from helpers.core import paths
from helpers.core.errors import ConfigError, DataError

_STAMP = re.compile(r"\d{8}-\d{6}")
# ./run_all.sh names the run folder it is executing a notebook in, so notebook 01 can tell the
# folder the runner made for it (manifest.json and logs already there) from a finished run.
RUNNER_ENV = "AFFECT_RUN_ALL_DIR"
# Run folders notebook 01 started in this process and has not written records to yet: running
# its folder cell again reuses one instead of leaving an empty folder behind.
_started: list[Path] = []
# Which notebook writes a file the later ones read, for the error when it is missing.
_WRITTEN_BY = {
    "records.parquet": "01",
    "settings.json": "01",
    "splits.parquet": "03",
    "train.parquet": "03",
    "augment.json": "03",
}
# What notebooks 04 and 05 write per model: all of it rests on the split notebook 03 made.
MODEL_FOLDERS = (
    "models",
    "history",
    "checkpoints",
    "cache",
    "tensorboard",
    "metrics",
    "predictions",
    "explain",
    "export",
)


def _located(run_dir: str | os.PathLike[str]) -> Path:
    """A later notebook's run_dir: a relative one from the working folder (a kernel's, which
    may be notebooks/ or the repository root), else from the repository root (the form the
    notebooks print, reports/<run>) or from notebooks/ (../reports/<run>), with a line saying
    which; a mistyped name is an error, never a new empty folder."""
    found = _existing(run_dir)
    if found is not None:
        return found
    given = Path(run_dir).expanduser()
    looked = "; looked for from the working folder, the repository root and notebooks/"
    looked = "" if given.is_absolute() else looked
    raise ConfigError(
        f"run folder {given.resolve()} does not exist (run_dir = {run_dir!r}{looked})"
    )


def _existing(run_dir: str | os.PathLike[str]) -> Path | None:
    """The folder a run_dir names, looked for as _located says (with its line), or None."""
    given = Path(run_dir).expanduser()
    tried = [(Path.cwd().resolve(), "the working folder")]
    if not given.is_absolute():
        tried += [(paths.REPO_ROOT, "the repository root"), (paths.NOTEBOOKS_DIR, "notebooks/")]
    for index, (base, name) in enumerate(tried):
        path = (base / given).resolve()
        if path.is_dir():
            if index:
                print(f"run_dir {str(run_dir)!r}: not in the working folder, read from {name}")
            return path
    return None


def _start_path(run_dir: str | os.PathLike[str]) -> Path:
    """Notebook 01's run_dir: a folder that exists, found as a later notebook finds it; a new
    one of the printed form reports/<run> goes under the repository's reports/, wherever the
    kernel runs; any other new one is made from the working folder."""
    found = _existing(run_dir)
    if found is not None:
        return found
    given = Path(run_dir).expanduser()
    here = (Path.cwd() / given).resolve()
    if given.is_absolute() or given.parts[:1] != (paths.REPORTS_DIR.name,):
        return here
    path = paths.REPORTS_DIR.joinpath(*given.parts[1:]).resolve()
    if path != here:
        print(f"run_dir {str(run_dir)!r}: made under the repository root's reports/")
    return path


class RunFolder(os.PathLike):
    """A run folder (reports/<timestamp>/ by default) and the paths of what stages write there."""

    def __init__(self, root: str | os.PathLike[str], chosen: str = ""):
        self.root = Path(root)
        self.chosen = chosen  # how resolve() found it: given as run_dir, the newest, or new

    # ------------------------------------------------------------------ a path, where one is wanted
    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def __truediv__(self, other: str | os.PathLike[str]) -> Path:
        return self.root / other

    def __str__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (RunFolder, os.PathLike, str)):
            return self.root == Path(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.root)

    @property
    def name(self) -> str:
        """The folder's name, e.g. 20261130-031500."""
        return self.root.name

    # ------------------------------------------------------------------ what the stages write
    @property
    def manifest(self) -> Path:
        """What `./run_all.sh` ran: profile, models, data fingerprint, stage statuses."""
        return self.root / "manifest.json"

    @property
    def settings(self) -> Path:
        """Notebook 01: the profile the run started with, for the notebooks after it."""
        return self.root / "settings.json"

    @property
    def records(self) -> Path:
        """Notebook 01: one row per face."""
        return self.root / "records.parquet"

    @property
    def ingest_report(self) -> Path:
        """Notebook 01: what the reader kept and skipped, and why."""
        return self.root / "ingest_report.csv"

    @property
    def eda_dir(self) -> Path:
        """Notebook 02: the tables behind the EDA figures."""
        return self.root / "eda"

    @property
    def splits(self) -> Path:
        """Notebook 03: the records with their train/val/test split."""
        return self.root / "splits.parquet"

    @property
    def train_table(self) -> Path:
        """Notebook 03: the balanced training table (augmented copies included)."""
        return self.root / "train.parquet"

    @property
    def augmented_dir(self) -> Path:
        """Notebook 03: offline augmented copies."""
        return self.root / "augmented"

    @property
    def augment_settings(self) -> Path:
        """Notebook 03: augmentation and balancing settings notebook 04 trains with."""
        return self.root / "augment.json"

    def model_path(self, model: str) -> Path:
        """Notebook 04: the trained model (best epoch)."""
        return self.root / "models" / f"{model}.keras"

    def card_path(self, model: str) -> Path:
        """Notebook 04: the model card (parameters, best epoch, timings)."""
        return self.root / "models" / f"{model}.json"

    def card_finished_at(self, model: str) -> str | None:
        """When notebook 04 finished training the model (its card's `finished_at`), or None
        where the card is missing, unreadable or does not say."""
        from helpers.core.jsonio import read_json  # pandas and numpy: only where a file is read

        path = self.card_path(model)
        try:
            value = read_json(path).get("finished_at") if path.is_file() else None
        except (DataError, AttributeError):
            return None
        return str(value) if value else None

    def history_path(self, model: str) -> Path:
        """Notebook 04: one row per epoch."""
        return self.root / "history" / f"{model}.csv"

    def checkpoints_dir(self, model: str) -> Path:
        """Notebook 04: per-epoch state that lets an interrupted training resume."""
        return self.root / "checkpoints" / model

    def cache_dir(self, model: str) -> Path:
        """Notebook 04: decoded images on disk when they do not fit in memory."""
        return self.root / "cache" / model

    def tensorboard_dir(self, model: str) -> Path:
        """Notebook 04 with tensorboard=True."""
        return self.root / "tensorboard" / model

    def metrics_path(self, model: str, dataset: str | None = None) -> Path:
        """Notebook 05: scores on the test split, or on an external test set by name."""
        return self.root / "metrics" / (f"{model}.{dataset}.json" if dataset else f"{model}.json")

    def metrics_files(self, dataset: str | None = None) -> list[Path]:
        """Every model's metrics file for the test split (None) or for one external set."""
        found = sorted((self.root / "metrics").glob("*.json"))
        return [p for p in found if (p.stem.partition(".")[2] or None) == dataset]

    def external_datasets(self) -> list[str]:
        """Names of the external test sets any model was scored on."""
        return sorted({p.stem.partition(".")[2] for p in (self.root / "metrics").glob("*.*.json")})

    @property
    def methods(self) -> Path:
        """Notebook 06: the methods section, written from what the run recorded."""
        return self.root / "methods.md"

    @property
    def methods_tex(self) -> Path:
        """Notebook 06: the same section in LaTeX, citing with natbib's \\citep."""
        return self.root / "methods.tex"

    @property
    def results_csv(self) -> Path:
        """Notebook 06: each model's headline metrics with their intervals, as numbers."""
        return self.root / "results.csv"

    @property
    def results_tex(self) -> Path:
        """Notebook 06: the same as a booktabs table for a paper."""
        return self.root / "results.tex"

    @property
    def references(self) -> Path:
        """Notebook 06: BibTeX of the works the methods section cites."""
        return self.root / "references.bib"

    def predictions_path(self, model: str) -> Path:
        """Notebook 05: one row per test image with every head's prediction."""
        return self.root / "predictions" / f"{model}.parquet"

    def explain_path(self, model: str) -> Path:
        """Notebook 05: Grad-CAM heatmaps of the test images it shows (read by the report)."""
        return self.root / "explain" / f"{model}.npz"

    @property
    def export_dir(self) -> Path:
        """Notebook 05: TFLite files, their sidecars and the deployment check."""
        return self.root / "export"

    def deployment_path(self, model: str) -> Path:
        """Notebook 05: what the TFLite export costs in accuracy and latency."""
        return self.export_dir / f"{model}.json"

    @property
    def logs_dir(self) -> Path:
        """`./run_all.sh`: each stage's kernel messages and progress lines."""
        return self.root / "logs"

    @property
    def report(self) -> Path:
        """Notebook 06, exported by `./run_all.sh`."""
        return self.root / "report.html"

    @property
    def report_screenshot(self) -> Path:
        """The report as headless Chromium showed it, when a Chromium is installed."""
        return self.root / "report.png"

    def need(self, path: Path) -> Path:
        """`path` when it exists, else a DataError naming the notebook that writes it, so a
        notebook run out of order says what to run first."""
        if path.exists():
            return path
        writer = _WRITTEN_BY.get(path.name)
        hint = f": run notebook {writer} first" if writer else ""
        raise DataError(path, f"not found in run folder {self.name}{hint}")

    def holds_run(self) -> bool:
        """Whether a run already started here: notebook 01's records or the manifest of
        ./run_all.sh. settings.json alone is a notebook 01 that stopped before its records (a
        mistyped data path, say), which may start again in the folder."""
        return any(p.exists() for p in (self.records, self.manifest))

    def trained_models(self, finished_only: bool = False) -> list[str]:
        """The models notebook 04 trained here or is training (a model file, or the progress
        notes of a training under way), by name: what a model parameter may name.
        finished_only: those with a model file alone, what notebook 05 can evaluate."""
        files = (self.root / "models").glob("*.keras")  # not the hidden, half-written partial
        names = {p.stem for p in files if not p.name.startswith(".")}
        if not finished_only:
            names |= {p.parent.name for p in (self.root / "checkpoints").glob("*/progress.json")}
        return sorted(names)

    def discard_models(self) -> list[str]:
        """Delete every model of the run and what was made from it (cards, histories, metrics,
        predictions, heatmaps, exports), for a split written anew; the names deleted."""
        import shutil

        names = self.trained_models()
        for folder in MODEL_FOLDERS:
            shutil.rmtree(self.root / folder, ignore_errors=True)
        return names

    @property
    def continued(self) -> str:
        """The line a notebook after 01 prints first: which run it continues and why, so a run
        another session started since is never taken silently."""
        why = {
            "given": "run_dir",
            "latest": "the newest run under reports/ with records; set run_dir for another",
            "new": "a new run",
        }.get(self.chosen, self.chosen or "given")
        return f"run folder {paths.shown(self.root)} ({why})"

    # ------------------------------------------------------------------ finding one
    @classmethod
    def new(cls, base: Path | None = None) -> RunFolder:
        """A fresh, never-reused folder named by the time, e.g. reports/20261122-061500."""
        base = paths.REPORTS_DIR if base is None else base
        base.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        for i in range(1000):
            candidate = base / (stamp if i == 0 else f"{stamp}-{i}")
            try:
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                continue
        raise ConfigError(f"could not create a new run folder under {base}")

    @classmethod
    def latest(cls, base: Path | None = None, needs: str = "records.parquet") -> RunFolder:
        """The newest run folder holding `needs`, so later notebooks continue what 01 started."""
        base = paths.REPORTS_DIR if base is None else base
        runs = sorted(
            (p for p in base.glob("*/") if (p / needs).exists() and _STAMP.match(p.name)),
            key=lambda p: p.name,
        )
        if not runs:
            raise ConfigError(
                f"no run folder under {base} has {needs}; run notebook 01 first or set run_dir"
            )
        return cls(runs[-1], chosen="latest")

    @classmethod
    def resolve(cls, run_dir: str | os.PathLike[str] | None, *, create: bool = False) -> RunFolder:
        """A notebook's run_dir parameter: '' means a new folder (create=True) or the latest.
        create=True (notebook 01) starts a run, so it refuses a folder that holds one (start)."""
        if create:
            return cls.start(run_dir)
        if run_dir:
            return cls(_located(run_dir), chosen="given")
        return cls.latest()

    @classmethod
    def start(cls, run_dir: str | os.PathLike[str] | None) -> RunFolder:
        """Notebook 01's folder: a new or empty one, never a run that already started there
        (its records and settings would no longer match its models and metrics), except the
        folder ./run_all.sh made for this run and one this process started moments ago. A
        folder with settings.json but no records (a notebook 01 that stopped before them) is
        started again, with a line saying so: given as run_dir, or with run_dir '' the newest
        under reports/ holding nothing else, once the process that wrote it has ended."""
        unused = [p for p in _started if p.is_dir() and not cls(p).records.exists()]
        if not run_dir:
            made = [p for p in unused if p.parent == paths.REPORTS_DIR.resolve()]
            if made:  # the folder cell ran again: the folder it made, not another
                return cls(made[-1], chosen="new")
            stray = _stray(paths.REPORTS_DIR)
            if stray is not None:  # the kernel restarted since that notebook 01 stopped
                print(
                    f"run folder {paths.shown(stray)} holds only the settings.json of a notebook "
                    "01 whose kernel stopped before saving its records; this run starts again in it"
                )
                _started.append(stray)
                return cls(stray, chosen="new")
            run = cls.new()
            _started.append(run.root.resolve())
            run.chosen = "new"
            return run
        path = _start_path(run_dir)
        run = cls(path, chosen="given")
        runner = os.environ.get(RUNNER_ENV)
        held = path.is_dir() and run.holds_run()
        ours = path in unused or (runner and Path(runner).resolve() == path)
        if held and not ours:
            raise ConfigError(
                f"run folder {path} already holds a run (run_dir = {str(run_dir)!r}); notebook 01 "
                "never overwrites one: set run_dir to a new or empty folder ('' makes "
                "reports/<timestamp>/), or continue that run with the notebooks after 01 "
                f"(./run_all.sh --resume --run-dir {shlex.quote(str(path))} for one "
                "./run_all.sh started)"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the run folder {path} ({exc.strerror or exc})"
            ) from exc
        if not held:  # a new or empty folder: this process started the run
            if path not in unused and run.settings.exists():
                print(
                    f"run folder {path} holds settings.json but no records: a notebook 01 that "
                    "stopped before saving them; this run starts again in it"
                )
            if path not in _started:
                _started.append(path)
        return run


# What any stage leaves in a run folder: a folder holding none of them is no run.
RUN_MARKS = ("settings.json", "records.parquet", "manifest.json", "metrics", "export")
# A run's own folders, which a table's run_dir is easily given instead of the run.
_RUN_PARTS = (*MODEL_FOLDERS, "eda", "augmented", "figures", "logs")


def read_run(run_dir: Any, what: str) -> RunFolder:
    """The run folder a table is read from, checked: a folder that does not exist, holds no
    run, or is one of a run's own folders (models/, metrics/, ...) is a ConfigError saying
    so, since a mistyped path would otherwise read as a run without models."""
    if not isinstance(run_dir, (str, os.PathLike)) or isinstance(run_dir, bytes):
        raise ConfigError(
            f"{what}: run_dir must be a run folder path (str or Path), got {type(run_dir).__name__}"
        )
    root = Path(run_dir).expanduser()
    if not root.is_dir():
        kind = "is a file, not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"{what}: run folder {run_dir} {kind}")
    parent = root.resolve().parent
    if root.resolve().name in _RUN_PARTS and any((parent / m).exists() for m in RUN_MARKS):
        raise ConfigError(
            f"{what}: {run_dir} is the {root.resolve().name}/ folder of the run {parent}, "
            "not a run folder: give the run folder itself"
        )
    if not any((root / m).exists() for m in RUN_MARKS):
        raise ConfigError(
            f"{what}: {run_dir} is not a run folder (no settings.json, records.parquet, "
            "manifest.json, metrics/ or export/): give a folder notebook 01 or ./run_all.sh wrote"
        )
    return run_dir if isinstance(run_dir, RunFolder) else RunFolder(root)


def process_mark() -> dict[str, Any]:
    """Which process wrote a notebook 01's settings.json (kept in it until the records are
    saved): a later kernel takes that folder again only once this process has ended."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _ended(mark: Any) -> bool:
    """Whether the process a process_mark names has ended: this host's, and no longer running
    (or this very process). Unknown, another host's or on Windows: running, so never taken."""
    if not isinstance(mark, dict) or mark.get("host") != socket.gethostname():
        return False
    pid = mark.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or os.name == "nt":
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: asks whether it runs, sends nothing
    except ProcessLookupError:
        return True
    except OSError:  # another user's process, say: it runs
        return False
    return False


def _stray(base: Path) -> Path | None:
    """The newest folder under `base` holding nothing but the settings.json of a notebook 01
    whose process has ended before it saved its records (a mistyped data path, then a kernel
    restart); a folder another kernel is still filling is never one."""
    if not base.is_dir():
        return None
    for folder in sorted(base.iterdir(), key=lambda p: p.name, reverse=True):
        if not (_STAMP.match(folder.name) and folder.is_dir()):
            continue
        try:
            if [p.name for p in folder.iterdir()] != ["settings.json"]:
                continue
            settings = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        unsaved = isinstance(settings, dict) and "data" not in settings
        if unsaved and _ended(settings.get("process")):
            return folder.resolve()
    return None


_MEMBER = re.compile(r"(seed|fold)-(\d+)")


def series_members(folder: str | os.PathLike[str]) -> list[Path]:
    """The runs of a `./run_all.sh --seeds` or `--folds` series that a folder holds (seed-0/,
    fold-1/, ...), in number order, so commands given the series' folder can take its runs;
    [] for a folder that is a run itself or holds no such runs."""
    root = Path(folder)
    if (
        not root.is_dir()
        or (root / "manifest.json").is_file()
        or (root / "records.parquet").is_file()
    ):
        return []
    found = [
        (match.group(1), int(match.group(2)), child)
        for child in root.iterdir()
        if child.is_dir() and (match := _MEMBER.fullmatch(child.name))
    ]
    return [child for _, _, child in sorted(found)]


def expand_series(folders: list[str | os.PathLike[str]]) -> list[Path]:
    """The folders given, each series folder replaced by its runs (series_members)."""
    out: list[Path] = []
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        out.extend(series_members(path) or [path])
    return out


def recorded_data(run: RunFolder) -> dict[str, Any]:
    """The data a run read: path, sha256 and whether it was the generated demo set, from
    ./run_all.sh's manifest.json, else from notebook 01's settings.json (notebooks run by
    hand); {} where neither recorded it."""
    from helpers.core.jsonio import read_json  # pandas and numpy: only where a file is read

    for path in (run.manifest, run.settings):
        if path.is_file():
            data = read_json(path).get("data")
            if isinstance(data, dict) and data:
                return data
    return {}


def recorded_code(run: RunFolder) -> dict[str, Any]:
    """The commit the run's code was at and whether it had uncommitted changes (git_commit,
    git_dirty), from the manifest, else from notebook 01's settings.json; {} where neither
    recorded it."""
    from helpers.core.jsonio import read_json  # pandas and numpy: only where a file is read

    for path in (run.manifest, run.settings):
        if path.is_file():
            facts = read_json(path)
            if facts.get("git_commit"):
                return {"git_commit": facts["git_commit"], "git_dirty": facts.get("git_dirty")}
    return {}
