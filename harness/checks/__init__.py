"""The checks' logic, importable and unit-tested on its own; the suite's test modules
(:mod:`harness.portability`) call it and say what each check judges."""
