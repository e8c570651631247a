"""Argon2id at OWASP-recommended cost (Password Storage Cheat Sheet).

OWASP's floor is m=19 MiB, t=2, p=1; we take m=46 MiB, t=1, p=1, another of its listed equivalent
settings with more memory hardness. Django's own Argon2 defaults (100 MiB, p=8) cost about 0.18 s
per check on our machines, which a sign-in storm turns into a denial of service.
"""

from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    algorithm = "argon2"  # keeps the hash prefix Django uses, so existing argon2 hashes still verify
    time_cost = 1
    memory_cost = 47_104  # KiB (46 MiB)
    parallelism = 1
