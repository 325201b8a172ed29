"""What the readers read, and say, when a user's data is almost right."""

from __future__ import annotations

import pytest

from builders import ROOT, record, write_zip
from helpers.core.images import close_archives
from helpers.data.datasets.affectnet import read_affectnet_zip


@pytest.fixture(autouse=True)
def _fresh_cache():
    yield
    close_archives()


# ---- AffectNet ------------------------------------------------------------------------------


def test_affectnet_counts_valence_and_arousal_files_missing_for_some_records(tmp_path):
    path = write_zip(
        tmp_path / "a.zip",
        record("1"),
        record("2", val=None),
        record("3", val=None, aro=None),
    )
    result = read_affectnet_zip(path, progress=False)
    assert len(result.records) == 3
    assert result.nulled == {"valence missing": 2, "arousal missing": 1}
    assert result.examples["valence missing"] == [
        f"{ROOT}/annotations/2_val.npy",
        f"{ROOT}/annotations/3_val.npy",
    ]
    assert "nulled 2 x valence missing" in str(result)
