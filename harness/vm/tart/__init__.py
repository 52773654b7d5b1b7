"""macOS guests through tart: the provider, tart's command line and settings, the key login into a
fresh macOS guest, and warm starts from suspended templates."""
