"""macOS flat installer packages (.pkg): a xar container holding a product's ``Distribution`` and
component packages (``PackageInfo``, ``Payload``, ``Scripts``), read statically on any host."""
