"""Models for the field-encryption benchmark only (tests/benchmarks/run.py); never migrated, never deployed."""
