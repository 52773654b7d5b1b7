"""Orchard's port-forward as a local port: 127.0.0.1:<port> -> a WebSocket to the controller ->
the guest's port. One WebSocket per TCP connection, raw bytes in binary frames both ways, relayed
by the harness's one relay (:mod:`harness.ssh.relay`)."""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack

from websockets.exceptions import ConnectionClosed, WebSocketException
from websockets.sync.client import ClientConnection, connect

from harness.ssh.relay import Peer, Relay

CLOSE_TIMEOUT_S = 2.0


class WebSocketStream:
    """A client WebSocket as a relay stream: each binary message is a chunk of the byte stream."""

    def __init__(self, opened: AbstractContextManager[ClientConnection]) -> None:
        self._stack = ExitStack()
        self._ws = self._stack.enter_context(opened)

    def recv(self, size: int) -> bytes:
        try:
            message = self._ws.recv()
        except ConnectionClosed:
            return b""
        return message if isinstance(message, bytes) else message.encode()

    def sendall(self, data: bytes) -> None:
        try:
            self._ws.send(data)
        except ConnectionClosed as exc:
            raise OSError(f"the port-forward WebSocket closed: {exc}") from None

    def close(self) -> None:
        self._stack.close()


def port_forward_bridge(ws_url: str, auth: str | None, connect_timeout_s: float) -> Relay:
    """A local port whose every connection opens its own WebSocket to ``ws_url``. A WebSocket
    that cannot be opened closes that connection: the SSH client sees it and retries or reports."""
    headers = {"Authorization": auth} if auth else {}

    def open_tunnel(peer: Peer) -> WebSocketStream:
        return WebSocketStream(connect(ws_url, additional_headers=headers, open_timeout=connect_timeout_s,
                                       close_timeout=CLOSE_TIMEOUT_S, max_size=None, compression=None))

    return Relay(open_tunnel, name="orchard-forward", refusals=(WebSocketException, TimeoutError))
