"""The installed plugin costs nothing where it is not asked for: an unrelated project's session
imports next to nothing of the harness, gets one help group and none of its fixtures; and the run
options are declared once, for `harness run` and pytest alike (real child pytests)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cli import build_parser
from harness.commands.run import RunPlan, pytest_argv
from harness.run_options import HELP_GROUP, RunOptions

pytest_plugins = ["pytester"]

# What an unrelated session may import of the harness: the entry module and what it declares with.
ENTRY_MODULES = {"harness", "harness.plugin", "harness.run_options", "harness.hookspecs"}
# `harness run` flags that are pytest's own (passed through), not the plugin's.
PYTEST_OWN = {"--help", "--workers", "--fail-fast", "-k"}
RECORD_MODULES = """
import sys
from pathlib import Path


def pytest_sessionfinish(session):
    loaded = sorted(m for m in sys.modules if m == "harness" or m.startswith("harness."))
    Path(session.config.rootpath, "harness-modules.txt").write_text("\\n".join(loaded))
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_an_unrelated_session_imports_only_the_entry_module(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(RECORD_MODULES)
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    run(pytester).assert_outcomes(passed=1)
    loaded = set((pytester.path / "harness-modules.txt").read_text().split())
    assert loaded == ENTRY_MODULES


@pytest.mark.parametrize("workers", [(), ("-n", "1")], ids=["one process", "xdist"])
def test_a_portability_run_still_registers_the_harness(pytester: pytest.Pytester, workers: tuple[str, ...]) -> None:
    pytester.makepyfile(test_uses="def test_uses(report, vm_environment):\n    assert report and vm_environment\n")
    run(pytester, *workers, f"--results-dir={pytester.path / 'out'}").assert_outcomes(passed=1)


def test_an_unrelated_session_has_none_of_the_harness_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    listed = run(pytester, "--fixtures").stdout.str()
    assert "harness" not in listed.split("collected", 1)[-1]
    # Asked for on the command line, the same fixtures are there.
    assert "fixtures defined from harness.plugins.vm" in run(pytester, "--fixtures", "-p", "harness.plugins").stdout.str()


DJANGO_SETTINGS = """
SECRET_KEY = "not-a-secret"
ROOT_URLCONF = "urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
ALLOWED_HOSTS = ["testserver"]
"""
DJANGO_URLS = """
from django.http import HttpResponse
from django.urls import path

urlpatterns = [path("", lambda request: HttpResponse("django's own"))]
"""
DJANGO_TEST = """
from django.test import Client


def test_client_is_djangos(client):
    assert isinstance(client, Client)
    assert client.get("/").content == b"django's own"
"""


def test_a_django_projects_client_fixture_is_its_own(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_django")
    pytester.makeini("[pytest]\nDJANGO_SETTINGS_MODULE = settings\npythonpath = .\n")
    pytester.makepyfile(settings=DJANGO_SETTINGS, urls=DJANGO_URLS, test_views=DJANGO_TEST)
    result = run(pytester, "-p", "django")  # the plugin, by its entry-point name: it must be there
    result.assert_outcomes(passed=1)
    # Not only the winner by registration order: the harness defines no second `client` at all.
    listed = run(pytester, "--fixtures").stdout.str()
    assert "fixtures defined from pytest_django" in listed and "fixtures defined from harness" not in listed


# -- the run options: declared once ---------------------------------------------------------------


def options_in_help(text: str) -> dict[str, str]:
    """Long flag -> its help text (whitespace normalised), from argparse-formatted help."""
    found: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        start = re.match(r"^  (?:-\w[ =]?\S*, )?(--[\w-]+|-\w)(?:[ =]\S+)?(?:\s{2,}(.*))?$", line)
        if start:
            current = start.group(1)
            found[current] = start.group(2) or ""
        elif current and line.startswith("      ") and line.strip():
            # argparse may break a line after a word's hyphen ("on-" / "failure").
            found[current] += ("" if re.search(r"\w-$", found[current]) else " ") + line.strip()
        else:
            current = None
    return {flag: " ".join(words.split()) for flag, words in found.items()}


def pytest_help_group(pytester: pytest.Pytester) -> tuple[str, str]:
    """pytest --help of an unrelated project: the harness's lines, and everything else."""
    with_plugin = run(pytester, "--help").stdout.lines
    without = run(pytester, "--help", "-p", "no:portability_harness").stdout.lines
    added = [line for line in with_plugin if line not in without]
    return "\n".join(added), "\n".join(line for line in with_plugin if line not in added)


def test_harness_run_help_and_the_plugins_options_agree(pytester: pytest.Pytester) -> None:
    run_help = options_in_help(build_parser()._subparsers._group_actions[0].choices["run"].format_help())  # type: ignore[union-attr]
    added, _ = pytest_help_group(pytester)
    plugin_help = options_in_help(added)
    assert added.startswith(HELP_GROUP[1] + ":"), "the plugin's lines are not one group"
    assert plugin_help, added
    shared = {flag: text for flag, text in run_help.items() if flag not in PYTEST_OWN}
    assert shared == {flag: plugin_help.get(flag) for flag in shared}
    assert set(plugin_help) - set(shared) == {"--max-vms", "--vm-cpus", "--vm-boot-timeout", "--vm-slot-timeout",
                                              "--inspect-target"}


def test_what_harness_run_passes_on_pytest_reads_back_the_same(tmp_path: Path) -> None:
    release = tmp_path / "refapp-v0.1.0-x86_64-linux.tar.gz"
    words = ["run", f"--release={release}", "--profile=tiles", "--profile-variant=cuda", "--image=a", "--image=b",
             "--keep-vm=always", "--cold", f"--results-dir={tmp_path / 'r'}", "--update-goldens",
             f"--goldens-dir={tmp_path / 'g'}", f"--upgrade-from={tmp_path / 'old.tar.gz'}", "--condition=all"]
    given = RunOptions.from_namespace(build_parser().parse_args(words))
    argv = pytest_argv(RunPlan(options=given, workers=0, select=None, pytest_args=()))
    probe = textwrap.dedent("""
        import sys
        import pytest
        from harness.run_options import RunOptions

        class Read:
            def pytest_configure(self, config):
                print(repr(RunOptions.from_pytest(config)))

        pytest.main([*sys.argv[1:], "--help"], plugins=[Read()])
    """)
    done = subprocess.run([sys.executable, "-c", probe, *argv[3:]], capture_output=True, text=True,
                          cwd=tmp_path, check=True)
    assert done.stdout.splitlines()[0] == repr(given)
