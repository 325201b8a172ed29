"""What every benchmark shares: sizes per mode, the demo data, machine facts, peak RSS, results."""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.errors import DataError
from helpers.core.jsonio import json_ready
from helpers.models import registry
from helpers.run import profiles as config

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "BENCHMARK_RESULT "  # prefix of the JSON line a child process prints
COURSEWORK_BYTES_PER_PIXEL = 4  # float32 per channel value


class Skip(Exception):
    """A benchmark that cannot run here; the reason goes into the results instead of numbers."""


# --------------------------------------------------------------------------- sizes per mode


@dataclass(frozen=True)
class Scale:
    """Input sizes and step counts of one mode, in one place so quick and full stay alike."""

    demo_n: int  # images in the AffectNet-layout demo zip
    demo_size: int  # their side, px
    repeats: int  # interleaved repeats of the cheap measurements
    pipeline_sizes: tuple[int, ...]  # model input sides for the input pipeline benchmark
    batch_size: int
    train_models: tuple[str, ...]
    train_size: int | None  # None: each model's size in the cpu profile
    warmup_steps: int
    timed_steps: int
    memory_rows: int  # balanced training table rows (upsampled)
    memory_size: int
    memory_batch: int
    memory_steps: int
    memory_model: str
    memory_caches: tuple[str, ...]  # train() cache modes measured besides the floor
    coursework_images: int  # images the coursework loader holds as float32
    inference_models: tuple[tuple[str, int], ...]
    inference_images: int
    inference_batch: int
    inference_single: int
    inference_int8: bool
    scale_sizes: tuple[int, ...]  # records per demo zip of the scale benchmark
    scale_demo_px: int  # their side, px
    scale_train_px: int  # the custom CNN's input side in its training epoch
    scale_n_boot: int  # bootstrap resamples of the predictions stage
    scale_child_per_stage: bool  # a fresh process per stage (else one per size, peak reset)
    bottleneck_models: tuple[str, ...]  # input pipeline vs model step rate, per backbone
    bottleneck_size: int
    bottleneck_warmup_steps: int
    bottleneck_timed_steps: int


QUICK = Scale(
    demo_n=64,
    demo_size=48,
    repeats=1,
    pipeline_sizes=(32, 48),
    batch_size=8,
    train_models=("custom_cnn",),
    train_size=32,
    warmup_steps=1,
    timed_steps=2,
    memory_rows=128,
    memory_size=48,
    memory_batch=8,
    memory_steps=2,
    memory_model="custom_cnn",
    memory_caches=("none",),
    coursework_images=64,
    inference_models=(("custom_cnn", 32),),
    inference_images=16,
    inference_batch=8,
    inference_single=4,
    inference_int8=False,
    scale_sizes=(64, 256),
    scale_demo_px=48,
    scale_train_px=32,
    scale_n_boot=50,
    scale_child_per_stage=False,
    bottleneck_models=("custom_cnn",),
    bottleneck_size=32,
    bottleneck_warmup_steps=1,
    bottleneck_timed_steps=2,
)
FULL = Scale(
    demo_n=4000,
    demo_size=224,
    repeats=3,
    pipeline_sizes=(96, 224),
    batch_size=32,
    train_models=tuple(registry.list_models(compared_only=True)),
    train_size=None,
    warmup_steps=3,
    timed_steps=24,
    memory_rows=16000,
    memory_size=224,
    memory_batch=32,
    memory_steps=5,
    memory_model="custom_cnn",
    memory_caches=("none", "disk"),
    coursework_images=1000,
    inference_models=(("custom_cnn", 48), ("mobilenetv2", 96)),
    inference_images=512,
    inference_batch=64,
    inference_single=32,
    inference_int8=True,
    scale_sizes=(4000, 32000, 128000),
    scale_demo_px=96,
    scale_train_px=48,
    scale_n_boot=1000,
    scale_child_per_stage=True,
    bottleneck_models=tuple(registry.list_models(compared_only=True)),
    bottleneck_size=224,
    bottleneck_warmup_steps=2,
    bottleneck_timed_steps=8,
)


# --------------------------------------------------------------------------- shared inputs


@dataclass
class Context:
    """Settings of this run plus the inputs benchmarks share, each made once on first use."""

    quick: bool
    out: Path
    work: Path
    seed: int = 0
    run_dirs: list[Path] = field(default_factory=list)
    run_e2e: bool = False
    e2e_profiles: tuple[str, ...] = ("smoke", "cpu")
    scale_sizes: tuple[int, ...] | None = None  # --scale-sizes; None: the mode's
    levers_data: Path | None = None  # --levers-data: FER-2013 for the levers benchmark
    levers_minutes: float = 10.0  # --levers-minutes: training budget per lever
    levers: tuple[str, ...] = ()  # --levers: names in benchmarks.levers.LEVERS; (): the default
    recipe_data: Path | None = None  # --recipe-data: the faces the recipe profile trains on
    recipe_profile: str = "fer2013-gpu"  # --recipe-profile
    recipe_minutes: float | None = None  # --recipe-minutes: training budget; None: the profile's
    # --recipe-set NAME=VALUE: training settings over the recipe profile's, e.g. weight_decay
    recipe_settings: dict[str, Any] = field(default_factory=dict)
    framing_data: Path | None = None  # --framing-data: faces with a test split
    framing_model: Path | None = None  # --framing-model: a model trained on them
    _made: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def scale(self) -> Scale:
        """The sizes of this mode."""
        return QUICK if self.quick else FULL

    def log(self, message: str) -> None:
        """Progress on stderr, so stdout stays the markdown table."""
        print(f"[benchmarks] {message}", file=sys.stderr, flush=True)

    def demo_zip(self) -> Path:
        """The AffectNet-layout zip: the cpu profile's cached demo set, or a tiny one (--quick)."""
        if "zip" not in self._made:
            if self.quick:
                from helpers.data.synthetic import generate_zip

                path = self.work / f"demo_n{QUICK.demo_n}_px{QUICK.demo_size}.zip"
                if not path.exists():
                    generate_zip(
                        path, n=QUICK.demo_n, seed=self.seed, size=QUICK.demo_size, progress=False
                    )
            else:
                self.log("demo zip: the cpu profile's 4,000 images at 224 px (made once, cached)")
                path = config.ensure_demo_zip("cpu", self.seed)
            self._made["zip"] = path
        return self._made["zip"]

    def records(self) -> pd.DataFrame:
        """The demo zip's records as the project reads them (zip:// image references)."""
        if "records" not in self._made:
            from helpers.data.datasets.affectnet import read_affectnet_zip

            self._made["records"] = read_affectnet_zip(self.demo_zip(), progress=False).records
        return self._made["records"]

    def extracted(self) -> Path:
        """The demo zip unpacked once into the work folder (the coursework's starting point)."""
        if "extracted" not in self._made:
            dest = self.work / "extracted"
            if not dest.exists():
                extract(self.demo_zip(), dest)
            self._made["extracted"] = dest
        return self._made["extracted"]

    def extracted_images(self) -> list[str]:
        """Extracted file of every record, in records order (the same images both ways)."""
        root = self.extracted()
        from helpers.core.images import parse_uri

        return [str(root / parse_uri(uri)[1]) for uri in self.records()["image"]]


def extract(zip_path: Path, dest: Path) -> Path:
    """Unzip everything, written beside the target and renamed so a half folder never stays."""
    tmp = dest.with_name(dest.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp)
    except (zipfile.BadZipFile, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(zip_path, f"cannot extract ({exc})") from exc
    tmp.rename(dest)
    return dest


def coursework_load(paths: Sequence[str], size: int) -> np.ndarray:
    """The coursework's loader: cv2 in a Python loop into a list, then one float32 array."""
    import cv2

    images = []
    for path in paths:
        image = cv2.imread(path)
        if image is None:
            raise DataError(path, "cv2.imread could not read the image")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        images.append(cv2.resize(image, (size, size)))
    return np.array(images, dtype=np.float32)


# --------------------------------------------------------------------------- measuring


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """fn's value and its wall time in seconds."""
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def median(values: Iterable[float]) -> float:
    """Median of the repeats: one slow outlier on a shared machine does not move it."""
    values = [float(v) for v in values]
    return statistics.median(values) if values else float("nan")


def per_second(count: float, seconds: float) -> float:
    """Items per second, NaN for a zero time rather than a division error."""
    return count / seconds if seconds > 0 else float("nan")


def _status_bytes(field_name: str) -> int | None:
    """A VmXXX line of /proc/self/status in bytes (Linux only)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(rf"^{field_name}:\s+(\d+)\s+kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def memory_now() -> dict[str, int | None]:
    """Peak and current resident memory of this process, in bytes.

    VmHWM is the peak of this process image alone. ru_maxrss is reported beside it but not
    trusted: Linux carries the parent's peak across fork+exec into a child's ru_maxrss.
    """
    import resource

    return {
        "peak_rss_bytes": _status_bytes("VmHWM"),
        "rss_bytes": _status_bytes("VmRSS"),
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def child_env() -> dict[str, str]:
    """Environment for child processes: the benchmarks package importable, TF quiet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    env.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    return env


def run_child(
    module: str, spec: dict[str, Any], log_path: Path, timeout: float | None = None
) -> dict[str, Any]:
    """Run `python -m module --child SPEC` in a fresh process and return the JSON it prints.

    A fresh process, so its peak memory is its own; its output goes to log_path.
    """
    command = [sys.executable, "-m", module, "--child", json.dumps(spec)]
    with open(log_path, "w") as log:
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            timeout=timeout,
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode != 0 or not lines:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(
            f"child {module} {spec.get('kind')} exited with {done.returncode}; "
            f"see {log_path}: {' | '.join(tail)}"
        )
    return json.loads(lines[-1][len(RESULT_MARK) :])


def print_child_result(result: dict[str, Any]) -> None:
    """The one line run_child looks for."""
    print(RESULT_MARK + json.dumps(json_ready(result)), flush=True)


# --------------------------------------------------------------------------- machine facts


def _cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo, or platform's guess elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    """Physical memory, from /proc/meminfo or sysconf."""
    try:
        match = re.search(
            r"^MemTotal:\s+(\d+)\s+kB", Path("/proc/meminfo").read_text(), re.MULTILINE
        )
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _version(*names: str) -> str | None:
    """Installed version of the first of these distributions that is installed."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _gpu_name() -> str | None:
    """The NVIDIA GPUs' names, as nvidia-smi gives them; None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    names = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return ", ".join(names) if done.returncode == 0 and names else None


def machine_facts() -> dict[str, Any]:
    """What the figures depend on, recorded once per run (load average: how busy it was)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    from helpers.core.paths import source_version

    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "ram_bytes": _ram_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow", "tensorflow-cpu"),
        "keras": _version("keras"),
        "keras_backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "jax": _version("jax"),
        "gpu": _gpu_name(),
        "numpy": _version("numpy"),
        "opencv": _version("opencv-python-headless", "opencv-python"),
        "albumentations": _version("albumentations"),
        "load_average_start": list(load) if load else None,
        **source_version(),  # git_commit, and git_dirty: uncommitted code
    }


def finish_facts(facts: dict[str, Any]) -> None:
    """Facts known only after the benchmarks ran: load at the end, GPUs if Keras was loaded."""
    if hasattr(os, "getloadavg"):
        facts["load_average_end"] = list(os.getloadavg())
    if sys.modules.get("keras") is not None:
        from helpers.train import backend

        facts["gpus"] = backend.gpu_names()


# --------------------------------------------------------------------------- results


def comparison(
    measure: str,
    project: float,
    baseline: float,
    unit: str,
    *,
    higher_is_better: bool,
    target: str | None = None,
    target_ratio: float | None = None,
    met: bool | None = None,
    baseline_name: str = "coursework",
) -> dict[str, Any]:
    """One side-by-side figure; ratio > 1 means the project is better (faster, smaller).

    With target_ratio, `met` is ratio >= target_ratio; otherwise `met` is what the caller says.
    """
    if higher_is_better:
        ratio = project / baseline if baseline and math.isfinite(baseline) else float("nan")
    else:
        ratio = baseline / project if project and math.isfinite(project) else float("nan")
    if target_ratio is not None and met is None:
        met = bool(math.isfinite(ratio) and ratio >= target_ratio)
    return {
        "measure": measure,
        "project": project,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """A table for the markdown report (cells are formatted when rendered)."""
    return {"title": title, "columns": list(columns), "rows": [list(r) for r in rows]}


def pct(fraction: float | None) -> str:
    """A fraction as a table cell, e.g. '7.5%'."""
    return "n/a" if fraction is None or not math.isfinite(fraction) else f"{fraction:.1%}"


def human_bytes(n_bytes: float) -> str:
    """Bytes in the unit that reads best: '602 MB', '2.41 GB'."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n_bytes) >= size:
            return f"{n_bytes / size:.3g} {unit}"
    return f"{n_bytes:.0f} bytes"


def gb(n_bytes: float | None) -> float | None:
    """Bytes as decimal GB (10^9), the unit the targets are stated in."""
    return None if n_bytes is None else n_bytes / 1e9
