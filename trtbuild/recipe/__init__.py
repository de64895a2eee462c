"""Recipe schema and position-aware loading."""
