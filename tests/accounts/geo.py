"""A small GeoIP2 City database for tests, built with mmdb-writer (no download)."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

# Public-looking ranges (Python treats the documentation ranges as private, and locate() skips those).
BERLIN = "81.2.69.10"
BERLIN_OTHER_NETWORK = "81.2.70.10"
NEW_YORK = "89.160.20.10"
SYDNEY = "175.16.199.10"

PLACES = {
    "81.2.69.0/24": ("DE", 52.52, 13.405),
    "81.2.70.0/24": ("DE", 52.52, 13.405),
    "89.160.20.0/24": ("US", 40.7128, -74.006),
    "175.16.199.0/24": ("AU", -33.8688, 151.2093),
}


def build(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", languages=["en"], ipv4_compatible=True)
    for network, (country, lat, lon) in PLACES.items():
        writer.insert_network(
            IPSet([network]),
            {"country": {"iso_code": country}, "location": {"latitude": lat, "longitude": lon}},
        )
    writer.to_db_file(str(path))
    return path
