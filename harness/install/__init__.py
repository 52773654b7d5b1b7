"""Installing a release in a guest, every way the suite does it, as small steps that return values.

    facts.probe_guest -> upload.upload -> first.install_release          (a fresh install)
                                       -> again.install_again            (the same release over it)
                                       -> conditions.install_under       (a profile's condition)
                                       -> uninstall.uninstall            (the profile's uninstaller)
    upgrade.upgrade: the older release, then this one over it            (a VM of its own)
    quarantined.install_quarantined: from a download Gatekeeper marked   (macOS)

Each step returns a frozen value of what happened (the installer's exit code, output and timings,
snapshots and manifests of the guest's disk); none decides pass or fail. An installer that fails
or hangs is a finding about the release, so it is recorded, not raised; only the harness's own
trouble (SSH, copying, a snapshot command failing) raises. The judgements over these values are
in :mod:`harness.checks`.
"""
