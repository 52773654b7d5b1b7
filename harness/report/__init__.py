"""Reports people act on: allure results, JUnit XML, a one-page sign-off and trends.

Where a finding becomes a line in the report: the suite records through :mod:`.recorder` (the
``report`` fixture, a :class:`~.recorder.Reporter`) into the run journal; :mod:`harness.plugins.report` turns
each test into a check record (:mod:`.identity`, :mod:`.outcome`) and its allure result
(:mod:`.allure`); :mod:`.signoff` builds its model from the journal and renders it;
:mod:`.history` keeps past runs and compares two of them. :mod:`.results_dir` says where each of
these files lives.
"""
