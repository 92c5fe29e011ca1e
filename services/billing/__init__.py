"""Billing: property tax, water, traffic fines and the cost of each repair (docs/architecture.md);
built in its own issue."""
