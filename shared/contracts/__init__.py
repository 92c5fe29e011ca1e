"""The wire between services and nothing else: event types and their data, error codes, the
CloudEvents envelope, the contact handoff, the Open311 row. No framework is imported here."""
