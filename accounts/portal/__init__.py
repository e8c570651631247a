"""The listener web portal: server-rendered pages over the services in ``accounts.services``."""
