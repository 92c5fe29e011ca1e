"""Open311 GeoReport v2: endpoints (http), form and query parsing (format), documents."""
