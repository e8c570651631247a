"""Write development settings and fresh keys to a git-ignored ``.env`` (``make keys``).

Never overwrites an existing file: keys that encrypted a database must outlive it.
Usage: ``python -m identity.devkeys [path]``.
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path


def render() -> str:
    kek = base64.b64encode(secrets.token_bytes(32)).decode()
    blind = base64.b64encode(secrets.token_bytes(32)).decode()
    return (
        "# Development only: made by `make keys`. Never commit this file; never reuse these keys.\n"
        "DJANGO_DEBUG=1\n"
        f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"FIELD_ENCRYPTION_KEYS=dev-1:{kek}\n"
        f"BLIND_INDEX_KEY={blind}\n"
    )


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else ".env")
    if path.exists():
        print(f"{path} exists; keeping its keys")
        return 0
    path.write_text(render(), encoding="utf-8")
    path.chmod(0o600)
    print(f"wrote development keys to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
