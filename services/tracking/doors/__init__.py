"""Tracking's doors: the RPC API, the JSON API, the citizen's pages and the probes (mixins)."""
