"""pytest plugin of camrescue (fixtures and scenario collection)."""
