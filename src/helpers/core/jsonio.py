"""The JSON files stages hand each other (manifest, model card, metrics): strict JSON, written
whole or not at all, read back with an error that names the file."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from helpers.core.errors import DataError


def json_ready(value: Any) -> Any:
    """Plain JSON types all the way down: numpy scalars/arrays unwrapped, NaN/inf -> None."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray, pd.Series)):
        return [json_ready(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is pd.NA:
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def write_json(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Strict JSON (NaN -> null), written whole or not at all (write_text)."""
    return write_text(path, json.dumps(json_ready(payload), indent=2, allow_nan=False) + "\n")


def write_text(path: str | os.PathLike, text: str, errors: str = "strict") -> Path:
    """A text file written beside the target and renamed, so a reader or an interrupted run
    never sees half a file; a failed write names the file. errors: as str.encode's, so a log
    read with "surrogateescape" is written back byte for byte."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8", errors=errors)
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: no half file left, and the error names the file
        tmp.unlink(missing_ok=True)
        raise DataError(path, exc.strerror or str(exc)) from exc
    return path


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON object from a file, or a DataError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object, got {type(data).__name__}")
    return data
