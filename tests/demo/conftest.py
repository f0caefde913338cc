"""One clean run (six days, no defects, with truth labels) shared by the demo tests that only read it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from factory_pipelines.demo import DemoDataSummary, write_demo_data
from tests.demo.readers import D1, SMALL


@pytest.fixture(scope="session")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, DemoDataSummary]:
    root = tmp_path_factory.mktemp("clean")
    summary = write_demo_data(root / "landing", D1, D1 + timedelta(days=5), defect_rate=0.0,
                              truth_dir=root / "truth", **SMALL)
    return root / "landing", root / "truth", summary
