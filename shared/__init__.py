"""Contracts shared by every service: event types, schemas, the CloudEvents envelope, helpers."""
