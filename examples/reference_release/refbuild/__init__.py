"""Build pipeline of the reference release (driven by ../build.py; stdlib only on the host side)."""
