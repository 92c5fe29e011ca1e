"""Tracking's write side: the use cases that open and move reports, folios, the command table,
and the CloudEvents the relay publishes."""
