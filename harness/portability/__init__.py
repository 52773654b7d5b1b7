"""The portability suite: the checks a release must pass, shipped inside the harness package.

Run it with the harness command or with plain pytest, from any directory::

    harness run --release dist/product-v1.0.0-x86_64-linux.tar.gz --profile mine.toml
    pytest --pyargs harness.portability --release dist/product-v1.0.0-x86_64-linux.tar.gz

Under plain pytest the caller's own configuration (pyproject/pytest.ini, conftest, markers,
plugins) applies. The modules here are thin: each check states what it judges and hands the work
to :mod:`harness.checks`; the order they run in is :data:`harness.suite.pipeline.PIPELINE`.
"""
