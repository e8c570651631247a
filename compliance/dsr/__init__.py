"""Data-subject requests: intake, verification, deadlines, officer decisions (issue #4)."""
