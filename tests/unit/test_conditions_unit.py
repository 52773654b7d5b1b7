"""An install condition's failure is headlined by the installer's first real error, not its first line."""

from __future__ import annotations

from harness.checks.conditions import problems
from harness.install.conditions import ConditionRun
from harness.install.run import InstallerRun
from harness.profile import ConditionSpec

# What the reference installer printed when one `mv` left a home with a space unquoted.
OUTPUT = """refapp install: sha256 verified against checksums.txt
refapp install: unpacking into /tmp/hns space home/.local/share/.refapp-install.afOiy2
mv: target 'home/.local/share/.refapp-install.afOiy2/lib/server': No such file or directory
refapp install: nothing was installed; the previous state is unchanged"""


def test_a_failed_condition_install_leads_with_its_error() -> None:
    spec = ConditionSpec(name="space_in_home_utf8", home="/tmp/hns space home", env={"LANG": "C.UTF-8"})
    run = ConditionRun(spec, "/tmp/hns space home", "tester",
                       InstallerRun("sh install.sh", 1, OUTPUT, 3.0, 600.0), None)
    [problem] = problems(run)
    first = problem.splitlines()[0]
    assert first.startswith("space_in_home_utf8 (HOME='/tmp/hns space home', user tester"), first
    assert "the installer exited with 1" in first and "mv: target 'home/.local/share/" in first, first
    assert "No such file or directory" in first, first
    assert problem.splitlines()[-1] == "refapp install: nothing was installed; the previous state is unchanged"
