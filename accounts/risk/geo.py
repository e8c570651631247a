"""Where an IP is, from a GeoIP2/GeoLite2 City database (GEOIP_PATH). No database: no place."""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Place:
    country: str
    latitude: float | None
    longitude: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"country": self.country, "latitude": self.latitude, "longitude": self.longitude}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Place | None:
        if not data or not data.get("country"):
            return None
        return cls(str(data["country"]), data.get("latitude"), data.get("longitude"))


@lru_cache(maxsize=2)
def _reader(path: str) -> Any:
    import geoip2.database

    return geoip2.database.Reader(path)


def reset() -> None:
    _reader.cache_clear()


def locate(ip: str | None) -> Place | None:
    path = getattr(settings, "GEOIP_PATH", "")
    if not ip or not path:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if address.is_private or address.is_loopback or address.is_link_local:
        return None
    import geoip2.errors

    try:
        record = _reader(path).city(ip)
    except (geoip2.errors.AddressNotFoundError, ValueError):
        return None
    country = record.country.iso_code or ""
    if not country:
        return None
    return Place(country, record.location.latitude, record.location.longitude)


def distance_km(a: Place, b: Place) -> float | None:
    """Great-circle distance (haversine); None when either place has no coordinates."""
    if None in (a.latitude, a.longitude, b.latitude, b.longitude):
        return None
    lat1, lon1, lat2, lon2 = map(math.radians, (a.latitude, a.longitude, b.latitude, b.longitude))  # type: ignore[arg-type]
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def network_of(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) an address belongs to: a listener's 'network'."""
    address = ipaddress.ip_address(ip)
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
