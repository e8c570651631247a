"""Database backends: Django's, with compilers that decrypt encrypted columns a batch of rows at a
time (``identity.backends.compiler``). Settings name them in place of Django's (identity/settings.py)."""
