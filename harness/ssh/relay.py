"""One TCP relay for every port forward in the harness and its test doubles.

A :class:`Listener` accepts on one address and hands each connection to a handler in a thread of
its own. A :class:`Relay` is a listener whose handler joins each connection to an upstream
:class:`Stream` (an SSH channel, a TCP socket, a WebSocket) and pumps bytes both ways until either
side ends; then both are closed. ``close()`` stops accepting and ends every open connection.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Protocol

CHUNK = 1 << 16
ACCEPT_POLL_S = 0.5  # closing a socket does not wake a thread blocked in accept(): poll instead
JOIN_TIMEOUT_S = 5.0

Peer = tuple[str, int]


class Stream(Protocol):
    """One end of a relayed connection. ``recv`` returns b"" once the far side is done and
    ``close`` must wake a ``recv`` blocked in another thread."""

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> object: ...

    def close(self) -> None: ...


class Tap(Protocol):
    """Watches one relayed connection: bytes towards upstream, bytes back, and its end."""

    def sent(self) -> None: ...

    def received(self) -> None: ...

    def finish(self) -> None: ...


class SocketStream:
    """A TCP socket as a :class:`Stream`: blocking reads, and a close that wakes them."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        self.sock = sock

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def pump(client: Stream, upstream: Stream, tap: Tap | None = None,
         errors: tuple[type[BaseException], ...] = (OSError, EOFError)) -> None:
    """Copy bytes both ways, one thread per direction, until either side ends (or fails with one
    of ``errors``); then close both."""
    lock = threading.Lock()  # the tap sees one event at a time

    def copy(source: Stream, sink: Stream, tick: Callable[[], None] | None) -> None:
        try:
            while data := source.recv(CHUNK):
                if tick is not None:
                    with lock:
                        tick()
                sink.sendall(data)
        except errors:
            pass
        finally:
            client.close()
            upstream.close()

    back = threading.Thread(target=copy, args=(upstream, client, tap.received if tap else None),
                            name="relay-back", daemon=True)
    back.start()
    copy(client, upstream, tap.sent if tap else None)
    back.join(timeout=JOIN_TIMEOUT_S)
    if tap is not None:
        tap.finish()


class Listener:
    """Accepts on ``address`` and runs ``handle(connection, peer)`` in a thread per connection."""

    def __init__(self, handle: Callable[[socket.socket, Peer], None], address: Peer = ("127.0.0.1", 0),
                 name: str = "listener", backlog: int = 16) -> None:
        self._handle = handle
        self._server = socket.create_server(address, backlog=backlog)
        self._server.settimeout(ACCEPT_POLL_S)
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name=name, daemon=True)
        self._acceptor.start()

    @property
    def address(self) -> Peer:
        host, port = self._server.getsockname()[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                connection, peer = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            with self._lock:
                if self._closing.is_set():
                    connection.close()
                    return
                worker = threading.Thread(target=self._serve, args=(connection, peer), daemon=True)
                self._open.append(connection)
                self._threads.append(worker)
            worker.start()

    def _serve(self, connection: socket.socket, peer: Peer) -> None:
        try:
            self._handle(connection, (str(peer[0]), int(peer[1])))
        finally:
            with self._lock:
                if connection in self._open:
                    self._open.remove(connection)
            connection.close()

    def close(self) -> None:
        self._closing.set()
        self._server.close()
        with self._lock:
            for connection in self._open:
                SocketStream(connection).close()
            threads = list(self._threads)
        self._acceptor.join(timeout=JOIN_TIMEOUT_S)
        for thread in threads:
            thread.join(timeout=JOIN_TIMEOUT_S)


class Relay(Listener):
    """A listener that joins each connection to ``connect(peer)``, an upstream :class:`Stream`.

    ``connect`` may raise (OSError or anything it names in ``refusals``): that connection is
    closed, ``refused(peer, error)`` is told, and the relay goes on accepting. ``tap()`` makes a
    :class:`Tap` per connection when given.
    """

    def __init__(self, connect: Callable[[Peer], Stream], address: Peer = ("127.0.0.1", 0), *,
                 name: str = "relay", refusals: tuple[type[BaseException], ...] = (),
                 refused: Callable[[Peer, BaseException], None] | None = None,
                 tap: Callable[[], Tap] | None = None) -> None:
        self._connect = connect
        self._refusals: tuple[type[BaseException], ...] = (OSError, EOFError, *refusals)
        self._refused = refused
        self._tap = tap
        super().__init__(self._join, address, name)

    def _join(self, connection: socket.socket, peer: Peer) -> None:
        try:
            upstream = self._connect(peer)
        except self._refusals as exc:
            if self._refused is not None:
                self._refused(peer, exc)
            return
        if self.closing:
            upstream.close()
            return
        pump(SocketStream(connection), upstream, self._tap() if self._tap is not None else None,
             self._refusals)
