"""macOS guests from an Orchard controller (REST API plus a WebSocket port-forward for SSH)."""
