"""Groups of rows that belong together (one person's faces, near-duplicate images): a split keeps
each in one fold or split, and a bootstrap draws each whole."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def group_codes(groups: Any) -> np.ndarray:
    """One integer per row naming its group: labels compared as given (1 and "1" differ), a
    missing label (None, NaN) a group of its own, numbered after the named ones."""
    codes, _ = pd.factorize(pd.Series(np.asarray(groups, dtype=object)), use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(missing.sum())
    return codes
