"""Allure: what the harness adds to allure-pytest's results while a test runs (:mod:`.glue`), the
files it writes beside them for the report (:mod:`.extras`), and Allure's command line that turns
them into one self-contained page (:mod:`.cli`)."""
