"""THE ORCHARD STAND-IN: a local HTTP server answering Orchard's documented ``/v1`` shapes.

Not Orchard. It serves, on 127.0.0.1 only, what ``tart-contract.md`` records of Orchard's API:
Basic auth; ``POST /v1/vms`` (409 on a taken name), ``GET /v1/vms``, ``GET``/``DELETE
/v1/vms/{name}`` (404 when unknown), ``GET /v1/vms/{name}/ip?wait=N``, ``GET /v1/vms/{name}/events``
and the WebSocket ``GET /v1/vms/{name}/port-forward?port=P&wait=N`` carrying raw TCP in binary
frames. A created VM goes ``pending`` -> ``running`` after ``schedule_delay_s``, like a worker
picking it up; its "guest" comes from ``guest_factory`` (by default the stand-in's loopback SSH
guest), and port 22 of the VM is forwarded to that guest's SSH. A spec whose image is in
``failing_images`` goes to ``failed`` with a status message.

Assumptions beyond the contract document (marked so they can be checked on a real controller):
``ip`` answers 200 ``{"ip": ...}`` or 503 when no address appeared within ``wait``; a port-forward
to a VM that is not running within ``wait`` is refused with 503 before the upgrade.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from harness.ssh.relay import SocketStream, pump
from harness.testing.tart_standin.guests import Guest
from harness.testing.tart_standin.loopback import LoopbackSSHGuest
from harness.waiting import attempts

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REQUIRED_SPEC_FIELDS = ("name", "image")


@dataclass
class StandinVM:
    spec: dict[str, Any]
    created: float
    status: str = "pending"
    status_message: str = ""
    worker: str = ""
    guest: Guest | None = None
    target: tuple[str, int] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {**self.spec, "status": self.status, "status_message": self.status_message, "worker": self.worker}

    def event(self, kind: str, payload: str) -> None:
        self.events.append({"kind": kind, "payload": payload, "timestamp": int(time.time())})


def _default_guest(spec: dict[str, Any]) -> Guest:
    return LoopbackSSHGuest(str(spec.get("username") or "admin"), str(spec.get("password") or "admin"))


class OrchardStandin:
    """``with OrchardStandin() as api: api.url`` — a controller with one worker on 127.0.0.1."""

    def __init__(
        self,
        account: str = "harness",
        token: str = "secret",
        schedule_delay_s: float = 0.2,
        guest_factory: Callable[[dict[str, Any]], Guest] = _default_guest,
        failing_images: frozenset[str] = frozenset(),
    ) -> None:
        self.credentials = "Basic " + base64.b64encode(f"{account}:{token}".encode()).decode()
        self.schedule_delay_s = schedule_delay_s
        self.guest_factory = guest_factory
        self.failing_images = failing_images
        self.vms: dict[str, StandinVM] = {}
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order, for assertions
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        if not isinstance(host, str):  # bound to "127.0.0.1" above; socket reports it as str
            raise TypeError(f"the stand-in's server address is not text: {host!r}")
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            for vm in self.vms.values():
                if vm.guest is not None:
                    vm.guest.shutdown(timeout_s=10)

    # -- the "worker" ------------------------------------------------------------------------

    def schedule(self, name: str) -> None:
        time.sleep(self.schedule_delay_s)
        with self.lock:
            vm = self.vms.get(name)
            if vm is None:
                return
            if vm.spec["image"] in self.failing_images:
                vm.status, vm.status_message = "failed", f"failed to pull image {vm.spec['image']}"
                vm.event("failed", vm.status_message)
                return
            vm.worker = "standin-worker-1"
            vm.guest = self.guest_factory(vm.spec)
        vm.guest.start()
        target = vm.guest.wait_ready(timeout_s=600)
        with self.lock:
            vm.target = target
            vm.status = "running"
            vm.event("running", f"started on {vm.worker}")

    def wait_running(self, name: str, wait_s: float) -> StandinVM | None:
        for _ in attempts(wait_s, 0.1):
            with self.lock:
                vm = self.vms.get(name)
                if vm is None or vm.status == "failed":
                    return None
                if vm.status == "running":
                    return vm
        return None


def _handler_for(api: OrchardStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(_OrchardHandler):
        standin = api

    return Handler


class _OrchardHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin: OrchardStandin

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        self.standin.requests.append((method, url.path))
        if self.headers.get("Authorization") != self.standin.credentials:
            self._reply(401, {"message": "unauthorized"})
            return
        parts = url.path.strip("/").split("/")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if parts[:2] != ["v1", "vms"]:
            self._reply(404, {"message": "not found"})
        elif len(parts) == 2:
            self._collection(method)
        elif len(parts) == 3:
            self._member(method, parts[2])
        elif len(parts) == 4 and method == "GET":
            self._action(parts[2], parts[3], query)
        else:
            self._reply(405, {"message": "method not allowed"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _collection(self, method: str) -> None:
        if method == "GET":
            with self.standin.lock:
                self._reply(200, [vm.as_json() for vm in self.standin.vms.values()])
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            spec = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._reply(400, {"message": "body is not JSON"})
            return
        missing = [key for key in REQUIRED_SPEC_FIELDS if not spec.get(key)]
        if missing:
            self._reply(400, {"message": f"missing fields: {', '.join(missing)}"})
            return
        with self.standin.lock:
            if spec["name"] in self.standin.vms:
                self._reply(409, {"message": f"VM with name {spec['name']} already exists"})
                return
            vm = StandinVM(spec=spec, created=time.time())
            vm.event("created", "VM created")
            self.standin.vms[spec["name"]] = vm
        threading.Thread(target=self.standin.schedule, args=(spec["name"],), daemon=True).start()
        self._reply(200, vm.as_json())

    def _member(self, method: str, name: str) -> None:
        with self.standin.lock:
            vm = self.standin.vms.get(name)
            if vm is None:
                self._reply(404, {"message": f"VM {name} not found"})
                return
            if method == "GET":
                self._reply(200, vm.as_json())
                return
            if method != "DELETE":
                self._reply(405, {"message": "method not allowed"})
                return
            del self.standin.vms[name]
        if vm.guest is not None:
            vm.guest.shutdown(timeout_s=10)
        self._reply(200)

    def _action(self, name: str, action: str, query: dict[str, str]) -> None:
        with self.standin.lock:
            vm = self.standin.vms.get(name)
        if vm is None:
            self._reply(404, {"message": f"VM {name} not found"})
            return
        if action == "events":
            self._reply(200, list(vm.events))
        elif action == "ip":
            running = self.standin.wait_running(name, float(query.get("wait", 0)))
            if running is None:
                self._reply(503, {"message": "no IP address yet"})
            else:
                self._reply(200, {"ip": f"192.168.64.{2 + sorted(self.standin.vms).index(name) % 250}"})
        elif action == "port-forward":
            self._port_forward(name, query)
        else:
            self._reply(404, {"message": f"no such action {action}"})

    # -- WebSocket port-forward --------------------------------------------------------------

    def _port_forward(self, name: str, query: dict[str, str]) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            self._reply(400, {"message": "port-forward needs a WebSocket upgrade"})
            return
        vm = self.standin.wait_running(name, float(query.get("wait", 0)))
        if vm is None or vm.target is None or query.get("port") != "22":
            self._reply(503, {"message": "VM is not running or the port is not forwarded"})
            return
        try:
            upstream = socket.create_connection(vm.target, timeout=10)
        except OSError:
            self._reply(503, {"message": "could not reach the guest port"})
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        # Guest bytes -> binary frames, client frames -> guest bytes; either side closing ends both.
        pump(_ServerFrames(self.connection), SocketStream(upstream))


def _send_frame(sock: socket.socket, opcode: int, payload: bytes) -> None:
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    sock.sendall(header + payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _recv_frame(sock: socket.socket) -> tuple[int, bytes]:
    first, second = _recv_exact(sock, 2)
    size = second & 0x7F
    if size == 126:
        size = struct.unpack("!H", _recv_exact(sock, 2))[0]
    elif size == 127:
        size = struct.unpack("!Q", _recv_exact(sock, 8))[0]
    mask = _recv_exact(sock, 4) if second & 0x80 else b"\0\0\0\0"
    raw = _recv_exact(sock, size)
    keystream = (mask * (size // 4 + 1))[:size]
    payload = (int.from_bytes(raw, "big") ^ int.from_bytes(keystream, "big")).to_bytes(size, "big")
    return first & 0x0F, payload


class _ServerFrames:
    """The server end of a WebSocket on a raw socket, as a relay stream: bytes go out as binary
    frames; a client's data frames come in as bytes, its pings are answered, its close ends it."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        self.sock = sock
        self._send_lock = threading.Lock()

    def _send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            _send_frame(self.sock, opcode, payload)

    def recv(self, size: int) -> bytes:
        while True:
            try:
                opcode, payload = _recv_frame(self.sock)
            except ConnectionError:
                return b""
            if opcode == 0x8:
                return b""
            if opcode == 0x9:
                self._send(0xA, payload)
            elif opcode in (0x0, 0x1, 0x2) and payload:
                return payload

    def sendall(self, data: bytes) -> None:
        self._send(0x2, data)

    def close(self) -> None:
        try:
            self._send(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        SocketStream(self.sock).close()
