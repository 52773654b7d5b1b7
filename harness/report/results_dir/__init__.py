"""The results directory a run writes: where each file lives and how a run claims it
(:mod:`.layout`), and whether its disk can take the run's writes (:mod:`.space`)."""
