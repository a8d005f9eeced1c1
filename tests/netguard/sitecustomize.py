"""Loaded by every Python process the tests start (via PYTHONPATH): block the network."""

import netguard

netguard.install()
