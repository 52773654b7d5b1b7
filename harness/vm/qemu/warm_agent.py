"""The guest side of a warm start: the one-shot agent a template leaves blocked on a virtio-serial
port, what the host sends it to make a resumed clone its own machine, and the devices involved."""

from __future__ import annotations

import os

from harness.vm.warm.plan import WarmRestoreFailed

AGENT_SOCKET = "warm.sock"
AGENT_PORT = "org.portability-harness.warm"
AGENT_PATH = "/run/harness-warm/agent.sh"
PEM_END = "-----END OPENSSH PRIVATE KEY-----"

# POSIX sh (the image's /bin/sh is dash), builtins only but for `date`: under software emulation
# every exec costs tens of milliseconds. The port reads end-of-file while no host is connected,
# hence the retry; the host normally connects before the guest runs, so the read just blocks.
# Request: "<epoch> <machine-id> <seed>", the clone's SSH host key (OpenSSH PEM lines), its public
# line. Answer: "done" or "error <why>". The port is a private host<->guest channel, not a network.
AGENT_SCRIPT = f"""#!/bin/sh
# portability-harness warm-start agent: makes a resumed clone its own machine, then exits.
exec 3<> /dev/virtio-ports/{AGENT_PORT}
until read -r epoch machine_id seed <&3; do sleep 0.1; done
case "$epoch$machine_id$seed" in ""|*[!0-9a-f.]*) echo "error malformed request" >&3; exit 1;; esac
date -u -s "@$epoch" > /dev/null
printf '%s\\n' "$machine_id" > /etc/machine-id
printf '%s' "$seed" > /dev/urandom
key=/etc/ssh/ssh_host_ed25519_key
umask 077
: > "$key"
while read -r line <&3; do
  printf '%s\\n' "$line" >> "$key"
  [ "$line" = "{PEM_END}" ] && break
done
read -r public <&3
case "$public" in ssh-ed25519\\ *) ;; *) echo "error no host key" >&3; exit 1;; esac
umask 022
printf '%s\\n' "$public" > "$key.pub"
echo done >&3
rm -f "$0"
"""

# Run as root in the template, once it has booted, right before the save.
TEMPLATE_PREPARE = f"""set -eu
timeout 240 systemctl is-system-running --wait > /dev/null || true
install -d -m 0700 {os.path.dirname(AGENT_PATH)}
cat > {AGENT_PATH}
systemd-run --quiet --collect --unit=harness-warm-agent /bin/sh {AGENT_PATH}
rm -f /etc/ssh/ssh_host_*key /etc/ssh/ssh_host_*key.pub
systemctl is-active --quiet harness-warm-agent
"""


def warm_devices() -> tuple[str, ...]:
    """QEMU arguments every warm VM (template and clone alike) carries: the agent's channel and
    the VM generation id that tells the guest kernel it was forked."""
    return (
        "-device", "vmgenid,guid=auto",
        "-device", "virtio-serial-pci",
        "-chardev", f"socket,id=warm,path={AGENT_SOCKET},server=on,wait=off",
        "-device", f"virtserialport,chardev=warm,name={AGENT_PORT}",
    )


def check_agent_reply(text: str) -> None:
    """The agent's answer must be ``done``; anything else is a failed personalisation."""
    if text.strip() != "done":
        raise WarmRestoreFailed(f"the warm-start agent answered {text.strip()[:200]!r} instead of 'done'")
