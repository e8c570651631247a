"""Use cases of accounts: each written once, called by the portal views, the API and the admin."""
