"""The data systems a request fans out to: internal models, connected SQL databases, services."""
