"""Virtual machines: the Provider protocol (:mod:`.provider`), one package per provider (``qemu``,
``tart``, ``orchard``), the registry that picks one, a VM's life in a test (:mod:`.machine`) and
the warm-start records (:mod:`.warm`). The ``vm`` fixtures are :mod:`harness.plugins.vm`."""
