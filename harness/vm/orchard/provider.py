"""macOS guests from a fleet of Macs through Orchard's REST API (``/v1`` on port 6120).

No Python client for Orchard exists, so this speaks the API with httpx (``tart-contract.md``):
``POST /vms`` creates *and* schedules a VM (409 when the name is taken), ``GET /vms/{name}`` reports
``status`` pending|running|failed, ``GET /vms/{name}/ip?wait=N`` its address on the worker, and
``DELETE /vms/{name}`` removes it. A VM's address is private to its worker, so SSH goes through
Orchard's WebSocket port-forward (``/vms/{name}/port-forward?port=22&wait=N``), bridged here to a
local TCP port: the SSH layer above sees an ordinary ``127.0.0.1:<port>``.

Mapping onto the provider life cycle: ``clone`` = create (the worker starts it right away),
``start`` = wait until running, ``stop`` = close the bridge (Orchard has no stop short of delete),
``delete`` = DELETE. Nothing here has run against a real Orchard: it is tested against the
documented request and response shapes served by the Orchard stand-in in
``harness.testing.orchard_standin``.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paramiko

from harness.config import HostPaths
from harness.errors import BootTimeout, InfrastructureError, UsageError
from harness.host.run_label import VMName
from harness.ssh.endpoint import SSHEndpoint
from harness.ssh.relay import Relay
from harness.vm.orchard.bridge import port_forward_bridge
from harness.vm.provider import (
    COLD_ONLY,
    Capabilities,
    StartMode,
    VMInfo,
    VMOptions,
    VMState,
)
from harness.vm.tart.macos_login import RunKey, ensure_key_login, probe_ssh
from harness.waiting import attempts

GUEST_SSH_PORT = 22


@dataclass(frozen=True)
class OrchardSettings:
    url: str  # e.g. http://orchard.example:6120 (the /v1 prefix is added here)
    account: str = ""
    token: str = ""
    images: tuple[str, ...] = ()  # what ``images()`` offers: Orchard has no image listing
    user: str = "admin"
    password: str | None = "admin"
    cpu: int = 4
    memory_mb: int = 8192
    softnet_block: tuple[str, ...] = ("0.0.0.0/0",)
    softnet_allow: tuple[str, ...] = ("@host",)
    request_timeout_s: float = 30.0
    forward_wait_s: int = 60

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OrchardSettings:
        env = os.environ if environ is None else environ
        url = env.get("HARNESS_ORCHARD_URL", "")
        if not url:
            raise UsageError(
                "HARNESS_ORCHARD_URL is not set",
                hint="point it at the controller, e.g. HARNESS_ORCHARD_URL=http://orchard.internal:6120, and set "
                "HARNESS_ORCHARD_ACCOUNT / HARNESS_ORCHARD_TOKEN to a service account with compute:read,write,connect",
            )

        def listed(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = env.get(key)
            return default if raw is None else tuple(part for part in raw.split(",") if part)

        return cls(
            url=url.rstrip("/"),
            account=env.get("HARNESS_ORCHARD_ACCOUNT", ""),
            token=env.get("HARNESS_ORCHARD_TOKEN", ""),
            images=listed("HARNESS_ORCHARD_IMAGES", ()),
            user=env.get("HARNESS_ORCHARD_USER") or "admin",
            password=env.get("HARNESS_ORCHARD_PASSWORD", "admin") or None,
            softnet_block=listed("HARNESS_ORCHARD_SOFTNET_BLOCK", ("0.0.0.0/0",)),
            softnet_allow=listed("HARNESS_ORCHARD_SOFTNET_ALLOW", ("@host",)),
        )

    def basic_auth(self) -> str | None:
        if not self.account:
            return None
        return "Basic " + base64.b64encode(f"{self.account}:{self.token}".encode()).decode()


def _vm_state(status: str) -> VMState:
    return "running" if status == "running" else "stopped" if status == "failed" else "unknown"


class OrchardProvider:
    """The :class:`harness.vm.provider.Provider` for an Orchard controller."""

    name = "orchard"
    capabilities = Capabilities()

    def __init__(self, settings: OrchardSettings, paths: HostPaths, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self.paths = paths
        auth = settings.basic_auth()
        self.http = httpx.Client(
            base_url=f"{settings.url}/v1", timeout=settings.request_timeout_s,
            headers={"Authorization": auth} if auth else {}, transport=transport,
        )
        self._bridges: dict[str, Relay] = {}

    @classmethod
    def from_env(cls, paths: HostPaths | None = None) -> OrchardProvider:
        return cls(OrchardSettings.from_env(), paths or HostPaths.from_env())

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise InfrastructureError(
                f"Orchard {method} {path} failed: {exc}",
                hint=f"check that the controller at {self.settings.url} is up and reachable",
            ) from exc
        if response.status_code in (401, 403):
            raise InfrastructureError(
                f"Orchard refused {method} {path} ({response.status_code})",
                hint="check HARNESS_ORCHARD_ACCOUNT / HARNESS_ORCHARD_TOKEN and the account's roles "
                "(compute:read, compute:write, compute:connect)",
            )
        return response

    def _fail(self, what: str, response: httpx.Response) -> InfrastructureError:
        return InfrastructureError(
            f"Orchard {what} failed ({response.status_code})", hint="see the controller's answer below",
            detail=response.text[:2000],
        )

    def vm_dir(self, name: VMName | str) -> Path:
        return self.paths.vms / str(name)

    # -- Provider ------------------------------------------------------------------------------

    def images(self) -> list[str]:
        return list(self.settings.images)

    def list(self) -> list[VMInfo]:
        response = self._request("GET", "/vms")
        if response.status_code != 200:
            raise self._fail("GET /vms", response)
        infos = []
        for vm in response.json():
            parsed = VMName.parse(str(vm.get("name", "")))
            infos.append(VMInfo(name=str(vm.get("name")), provider=self.name, state=_vm_state(str(vm.get("status", ""))),
                                owner_pid=parsed.owner_pid if parsed else None))
        return infos

    def spec(self, image: str, name: VMName, options: VMOptions | None) -> dict[str, Any]:
        cpu, memory = self.settings.cpu, self.settings.memory_mb
        if options is not None:
            cpu, memory = max(cpu, options.cpus), max(memory, options.memory_mb)
        online = options is not None and options.online  # harness shell --online-for-debugging
        return {
            "name": str(name), "image": image, "os": "darwin", "arch": "arm64", "runtime": "tart",
            "imagePullPolicy": "IfNotPresent", "cpu": cpu, "memory": memory, "headless": True,
            "netSoftnet": not online, "netSoftnetBlock": [] if online else list(self.settings.softnet_block),
            "netSoftnetAllow": [] if online else list(self.settings.softnet_allow),
            "username": self.settings.user, "password": self.settings.password or "",
            "labels": {"portability-harness": name.run_id},
        }

    def clone(self, image: str, name: VMName, options: VMOptions | None = None) -> None:
        response = self._request("POST", "/vms", json=self.spec(image, name, options))
        if response.status_code == 409:
            raise InfrastructureError(
                f"Orchard already has a VM named {name}; refusing to reuse it",
                hint="run `harness gc` to remove leftovers of dead runs",
            )
        if response.status_code not in (200, 201):
            raise self._fail(f"POST /vms ({name})", response)
        self.vm_dir(name).mkdir(parents=True, exist_ok=True)

    def _status(self, name: VMName) -> dict[str, Any]:
        response = self._request("GET", f"/vms/{name}")
        if response.status_code == 404:
            raise InfrastructureError(f"Orchard no longer knows VM {name}", hint="it was deleted by someone else")
        if response.status_code != 200:
            raise self._fail(f"GET /vms/{name}", response)
        return dict(response.json())

    def start(self, name: VMName, timeout_s: float = 900.0) -> None:
        """Orchard starts a VM on its own once a worker takes it: wait for ``running``."""
        vm: dict[str, Any] = {}
        for _ in attempts(timeout_s, 1.0):
            vm = self._status(name)
            status = vm.get("status")
            if status == "running":
                return
            if status == "failed":
                raise InfrastructureError(
                    f"Orchard could not start {name}: {vm.get('status_message') or 'no message'}",
                    hint="check the worker's tart and the image name", detail=self.console_tail(name),
                )
        raise BootTimeout(
            f"Orchard left {name} {vm.get('status')} for {timeout_s:.0f} s (worker {vm.get('worker') or 'none'})",
            hint="every worker may be busy: each runs at most 2 macOS VMs",
        )

    def ip(self, name: VMName, wait_s: int) -> str | None:
        response = self._request("GET", f"/vms/{name}/ip", params={"wait": wait_s},
                                 timeout=wait_s + self.settings.request_timeout_s)
        if response.status_code == 200:
            return str(response.json().get("ip") or "") or None
        return None

    def _bridge(self, name: VMName) -> Relay:
        bridge = self._bridges.get(str(name))
        if bridge is None:
            ws_base = self.settings.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
            url = f"{ws_base}/v1/vms/{name}/port-forward?port={GUEST_SSH_PORT}&wait={self.settings.forward_wait_s}"
            bridge = port_forward_bridge(url, self.settings.basic_auth(), connect_timeout_s=self.settings.forward_wait_s + 10)
            self._bridges[str(name)] = bridge
        return bridge

    def wait_ready(self, name: VMName, timeout_s: float) -> SSHEndpoint:
        started = time.monotonic()
        self.start(name, timeout_s=timeout_s)
        bridge = self._bridge(name)
        key = RunKey.create(self.vm_dir(name) / "id_ed25519", comment=f"portability-harness {name}")
        problem = "no answer yet"
        for attempt in attempts(timeout_s, 2.0, since=started):
            step = max(1.0, min(20.0, attempt.remaining_s()))
            try:
                probe_ssh("127.0.0.1", bridge.port, step)
            except (OSError, paramiko.SSHException, EOFError) as exc:
                problem = f"SSH through the port-forward did not answer ({exc.__class__.__name__}: {exc})"
                continue
            ensure_key_login("127.0.0.1", bridge.port, self.settings.user, self.settings.password, key, step)
            return SSHEndpoint(host="127.0.0.1", port=bridge.port, user=self.settings.user,
                               key_path=key.private_path, password=self.settings.password)
        raise BootTimeout(f"Orchard VM {name} did not answer SSH within {timeout_s:.0f} s: {problem}",
                          hint="check the VM's events and that the image enables Remote Login",
                          detail=self.console_tail(name))

    def stop(self, name: VMName, timeout_s: float = 30.0) -> None:
        bridge = self._bridges.pop(str(name), None)
        if bridge is not None:
            bridge.close()

    def delete(self, name: VMName) -> None:
        self.stop(name)
        response = self._request("DELETE", f"/vms/{name}")
        if response.status_code not in (200, 204, 404):
            raise self._fail(f"DELETE /vms/{name}", response)
        shutil.rmtree(self.vm_dir(name), ignore_errors=True)

    def console_tail(self, name: VMName | str, lines: int = 60) -> str:
        """Orchard's events for the VM (there is no console to read from afar)."""
        try:
            response = self._request("GET", f"/vms/{name}/events")
        except InfrastructureError as exc:
            return f"(events unavailable: {exc.message})"
        if response.status_code != 200:
            return f"(events unavailable: HTTP {response.status_code})"
        events = response.json()
        return "\n".join(f"{e.get('timestamp')} {e.get('kind')}: {e.get('payload')}" for e in events[-lines:])

    def image_digest(self, image: str) -> None:
        """The controller names images, not builds: no digest to compare."""
        return

    def traffic_pcap(self, name: VMName | str) -> None:
        """Orchard cannot record a guest's traffic: never a capture."""
        return

    def start_mode(self, name: VMName | str) -> StartMode:
        return COLD_ONLY

    def foreign_running_count(self) -> int:
        """The controller schedules onto its own workers: nothing here takes a host slot."""
        return 0

    def close(self) -> None:
        for name in list(self._bridges):
            self._bridges.pop(name).close()
        self.http.close()

