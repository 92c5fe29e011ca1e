"""An example service on the chassis, the bulletin: reports per category (docs/new-service.md)."""
