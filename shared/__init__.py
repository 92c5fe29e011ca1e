"""Code every service shares: `contracts` (the wire) and `chassis` (what runs a service)."""
