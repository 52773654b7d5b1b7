"""Area plugin (placeholder until its area lands)."""
