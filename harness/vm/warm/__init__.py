"""Provider-neutral warm-start records: how a VM is to start and did start (:mod:`.plan`), and what
makes a resumed clone its own machine (:mod:`.personalization`)."""
