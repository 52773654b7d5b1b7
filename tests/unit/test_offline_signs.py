"""The macOS offline check's reading of logs: failed network attempts are found, ordinary lines are not."""

from __future__ import annotations

from harness.checks.offline import network_failures

QUIET_INSTALL = "unpacking layers\ninstalled refapp 0.1.0 into /Users/admin/.local/share/refapp\n"
SERVER_LOG = (
    "INFO: started server on 127.0.0.1:6969\n"
    "WARNING: update check failed: <urlopen error [Errno 8] nodename nor servname provided, or not known>\n"
    "INFO: GET /health 200\n"
)
PIP_LOG = "WARNING: Retrying (Retry(total=4, connect=None)) after connection broken by 'NewConnectionError'\n"


def test_failed_attempts_are_named_with_their_source() -> None:
    found = network_failures({"installer output": QUIET_INSTALL + PIP_LOG, "server logs": SERVER_LOG})
    assert found == [
        "installer output: WARNING: Retrying (Retry(total=4, connect=None)) after connection broken by 'NewConnectionError'",
        "server logs: WARNING: update check failed: <urlopen error [Errno 8] nodename nor servname provided, or not known>",
    ]


def test_a_quiet_offline_run_has_nothing_to_report() -> None:
    assert network_failures({"installer output": QUIET_INSTALL, "server logs": "INFO: GET /health 200\n"}) == []
