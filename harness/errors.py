"""Errors the harness raises on purpose.

Every error carries a ``hint``: the one thing a user should do next. The split between
``InfrastructureError`` and ``ProductDefect`` is what reports use to tell *broken* (our VM, SSH
or host) from *failed* (the release under test).
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: a message for humans plus a hint naming the next step."""

    def __init__(self, message: str, hint: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail = detail

    def __str__(self) -> str:
        parts = [self.message]
        if self.hint:
            parts.append(f"hint: {self.hint}")
        if self.detail:
            parts.append(self.detail)
        return "\n".join(parts)


class UsageError(HarnessError):
    """Bad input from the user: an unknown name, a missing file, a malformed profile."""


class InfrastructureError(HarnessError):
    """The harness's own machinery failed (VM, SSH, host tools): the release is not to blame."""


class MissingToolError(InfrastructureError):
    """A host tool is absent; ``hint`` names the package that provides it."""


class BootTimeout(InfrastructureError):
    """A VM did not become reachable in time; ``detail`` holds the console tail."""


class RemoteTimeout(InfrastructureError):
    """A command in the guest ran past its timeout; what it printed until it was killed is kept."""

    def __init__(self, message: str, hint: str = "", detail: str = "", stdout: str = "", stderr: str = "") -> None:
        super().__init__(message, hint, detail)
        self.stdout = stdout
        self.stderr = stderr


class ProductDefect(HarnessError):
    """The release under test misbehaved: install failed, output drifted, network was used."""
