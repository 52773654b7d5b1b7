# Two commands a fresh machine needs:  `make run`  (the main job)  and  `make test`  (all tests).
# Every target first runs the idempotent set-up in .ci/setup (apt packages, venv, base image,
# reference release); each step there is skipped when its result is already current.

VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup run test test-fast bench lint clean-results

setup:
	bash .ci/setup

run: setup
	$(VENV)/bin/harness run

test: setup
	$(VENV)/bin/pytest tests $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/pytest tests -m "not vm" $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python bench/bench_inspect.py
	$(VENV)/bin/python bench/bench_vm.py
	$(VENV)/bin/python bench/bench_warm.py
	$(VENV)/bin/python bench/bench_shell.py
	$(VENV)/bin/python bench/bench_plugin_startup.py
	$(VENV)/bin/python bench/bench_egress.py
	$(VENV)/bin/python bench/bench_macho.py

clean-results:
	rm -rf results
