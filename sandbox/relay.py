"""A TCP relay: listen on one address, forward every connection to a loopback server.

Pods live in network namespaces behind their bridge's gateway ``10.0.N.1`` and reach only their /24
(sandbox/kube/podnet.py), while the sandbox's servers listen on loopback. A relay on the gateway address
lets a pod reach one chosen loopback server, and nothing else of the host: no forwarding, NAT or iptables
rule is involved, and the server itself never listens beyond loopback.

The listening socket is bound with ``IP_FREEBIND``, so a relay may start before its bridge exists (under
`make run` the control plane comes up later, and a restarted cluster brings its bridge back) and accepts
once the address is there.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading

logger = logging.getLogger(__name__)

# Linux's IP_FREEBIND (socket.IP_FREEBIND exists only from Python 3.12).
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
CONNECT_TIMEOUT_SECONDS = 5.0
CHUNK = 64 * 1024


class TcpRelay:
    """``start()`` listens on ``listen_host:listen_port`` (a free port when 0) and serves in threads;
    ``stop()`` closes the listener and every relayed connection. A context manager."""

    def __init__(self, listen_host: str, listen_port: int, target_host: str, target_port: int) -> None:
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.listen_port}"

    def start(self) -> TcpRelay:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        try:
            listener.bind((self.listen_host, self.listen_port))
            listener.listen(64)
        except OSError:
            listener.close()
            raise
        self.listen_port = listener.getsockname()[1]
        self._listener = listener
        self._thread = threading.Thread(target=self._accept_loop, name=f"relay-{self.address}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            # shutdown() wakes the thread blocked in accept(); close() alone does not on Linux.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> TcpRelay:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopping.is_set():
            try:
                client, _peer = listener.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._serve, args=(client,), name="relay-conn", daemon=True).start()

    def pick_target(self) -> tuple[str, int] | None:
        """Where the next connection goes (None: nowhere, the connection is closed)."""
        return self.target

    def _serve(self, client: socket.socket) -> None:
        target = self.pick_target()
        if target is None:
            logger.warning("relay %s: no target to forward to", self.address)
            client.close()
            return
        try:
            upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT_SECONDS)
        except OSError as exc:
            logger.warning("relay %s: cannot reach %s:%s: %s", self.address, *target, exc)
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        try:
            _pump(client, upstream, self._stopping)
        finally:
            with self._lock:
                self._open.difference_update((client, upstream))
            client.close()
            upstream.close()


def _pump(a: socket.socket, b: socket.socket, stopping: threading.Event) -> None:
    """Copy both ways until both sides have finished sending (half-closes are passed on)."""
    peer = {a: b, b: a}
    with selectors.DefaultSelector() as selector:
        for sock in (a, b):
            selector.register(sock, selectors.EVENT_READ)
        open_readers = 2
        while open_readers and not stopping.is_set():
            for key, _events in selector.select(timeout=1.0):
                source = key.fileobj
                try:
                    data = source.recv(CHUNK)
                except OSError:
                    return
                if not data:
                    selector.unregister(source)
                    open_readers -= 1
                    with contextlib.suppress(OSError):
                        peer[source].shutdown(socket.SHUT_WR)
                    continue
                try:
                    peer[source].sendall(data)
                except OSError:
                    return
