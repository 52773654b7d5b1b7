"""Repository-level conftest: the harness plugin itself is loaded through its entry point."""
