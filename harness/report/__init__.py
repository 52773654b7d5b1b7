"""Reports people act on: allure results, JUnit XML, a one-page sign-off and trends.

Where a finding becomes a line in the report: the suite records through :mod:`.recorder` (the
``report`` fixture) into the run journal; :mod:`harness.plugins.report` turns each test into a
check record and its allure result; :mod:`.signoff` builds :mod:`.model` from the journal and renders it
(:mod:`.render_html`, :mod:`.render_markdown`); :mod:`.trends` compares two runs.
"""
