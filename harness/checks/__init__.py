"""The checks' judgements, importable and unit-tested on their own: they take what an install
step returned (:mod:`harness.install`) or what the guest reported through the ``Guest`` facade,
and fail with the message the suite reports; they install nothing themselves. The suite's test
modules (:mod:`harness.portability`) call them and say what each check judges."""
