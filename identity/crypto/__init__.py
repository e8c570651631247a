"""Field encryption: AES-256-GCM values under per-subject keys, wrapped by rotating KEKs.

``fields`` has the model fields, ``keystore`` the subject keys (create, shred, rewrap),
``envelope`` the ciphertext format, ``blind`` the lookup indexes.
"""
