"""The mobile API of accounts (CONTRACT.md: Authentication, Account)."""
