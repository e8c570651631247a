from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts.risk import geo
from tests.accounts.geo import build


@pytest.fixture
def geoip(tmp_path: Path, settings) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    path = build(tmp_path / "city.mmdb")
    settings.GEOIP_PATH = str(path)
    geo.reset()
    yield path
    geo.reset()
