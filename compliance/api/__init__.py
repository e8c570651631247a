"""The privacy API (CONTRACT.md: Privacy)."""
