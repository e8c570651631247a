"""The listener's privacy pages: file a request, follow it, cancel it (issue #4, portal channel)."""
