"""What the shell in the guest looks like: a prompt that says whether the network is cut, the
release's path in the environment, and the upload directory as the starting point.

The settings live in one rc file in the guest (``/var/tmp``: it survives a reboot of a kept VM and
is outside every file-system snapshot the checks take), so re-entering a kept VM gets the same
prompt without the host remembering anything.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from harness.install.upload import UPLOAD_DIR

RC_PATH = "/var/tmp/harness-shell.rc"
OFFLINE = "offline"
ONLINE = "ONLINE"


@dataclass(frozen=True)
class GuestShell:
    network: str  # OFFLINE | ONLINE
    release_path: str = ""  # the tarball in the guest, "" when none was copied in
    vm_name: str = ""

    def rc_text(self) -> str:
        label = f"harness {self.network}" + (" (debugging)" if self.network == ONLINE else "")
        lines = [
            "# harness shell: prompt and environment of this VM",
            '[ -n "$BASH_VERSION" ] && [ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"',
            f"export HARNESS_NETWORK={self.network}",
            f"export HARNESS_VM={shlex.quote(self.vm_name)}",
        ]
        if self.release_path:
            lines.append(f"export HARNESS_RELEASE={shlex.quote(self.release_path)}")
        lines += [
            'if [ -n "$BASH_VERSION" ]; then',
            f"  PS1='[{label}] \\u@\\h:\\w\\$ '",
            "else",
            f"  PS1='[{label}] $ '",
            "fi",
            f"cd {shlex.quote(UPLOAD_DIR)} 2>/dev/null || cd",
        ]
        return "\n".join(lines) + "\n"


def launch_command() -> str:
    """bash with the rc file where there is bash (Linux, and macOS's /bin/bash), else sh via $ENV."""
    rc = shlex.quote(RC_PATH)
    return (f"if command -v bash >/dev/null 2>&1; then exec bash --rcfile {rc} -i; "
            f"else ENV={rc} exec sh -i; fi")
