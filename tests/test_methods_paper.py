"""What a run records for its methods text: every package version the text relies on, the
machine's memory, the near-duplicate distance the splits used, and the rules' numbers as the text
writes them."""

from __future__ import annotations

import json

import pytest

from helpers.core import paths
from helpers.data.augment import AugmentSettings
from helpers.evaluation import scoring
from helpers.run import runner
from helpers.train import backend


def test_the_manifest_records_every_package_the_text_relies_on() -> None:
    recorded = runner.package_versions()
    for name in ("scipy", "pillow", "ImageHash", "krippendorff"):
        assert name in runner.PACKAGES and recorded[name], name  # pinned, so installed


def test_the_model_card_records_the_machines_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend, "gpu_models", list)  # whatever GPUs the test machine has
    memory = backend.machine()["memory_gib"]
    assert isinstance(memory, float) and memory > 0


def test_notebook_03_records_the_near_duplicate_distance_the_splits_used() -> None:
    notebook = json.loads((paths.NOTEBOOKS_DIR / "03_augment.ipynb").read_text())
    cells = ["".join(cell["source"]) for cell in notebook["cells"]]
    recorded = next(cell for cell in cells if "aug.AugmentSettings(" in cell)
    assert "near_distance=near_distance" in recorded
    settings = AugmentSettings(near_distance=3)
    assert AugmentSettings.from_dict(settings.to_dict()) == settings


def test_the_rules_resamples_are_written_as_the_text_writes_numbers() -> None:
    assert f"({scoring.TTA_LEAD_BOOT:,} resamples of the same faces" in scoring.TTA_RULE
