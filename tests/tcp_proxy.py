"""A loopback TCP proxy for fault tests: forward, blackhole or cut the connections to a server.

::

    with TcpProxy(redis_port) as proxy:
        url = proxy.url_for(0)     # point one process's cache at the proxy
        proxy.blackhole()          # connections stay open, nothing comes back: every call times out
        proxy.heal()               # forward again (bytes sent meanwhile were dropped: broken
                                   # connections, which clients reconnect)
        proxy.cut()                # close every connection and refuse new ones until heal()
        proxy.delay(0.5)           # forward every chunk 0.5 s late (a slow link); heal() ends it;
                                   # cut() drops what is still held back

Unlike killing the server, a blackhole cuts only the clients behind the proxy, and the server
keeps its data: the partition in which a writer's invalidation is lost while other processes
keep reading the old entries.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from types import TracebackType

__all__ = ["TcpProxy"]


class TcpProxy:
    """Accept on a free 127.0.0.1 port and forward to ``127.0.0.1:target_port`` (one thread each)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.mode = "forward"  # or "blackhole", "cut", "delay"
        self.lag = 0.0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False

    def url_for(self, db: int) -> str:
        """``redis://127.0.0.1:<proxy port>/<db>``."""
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> TcpProxy:
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()
        return self

    def blackhole(self) -> None:
        """Keep connections open but forward nothing, either way: clients time out."""
        self.mode = "blackhole"

    def delay(self, seconds: float) -> None:
        """Forward each chunk ``seconds`` late, either way (a replication link that lags)."""
        self.lag = seconds
        self.mode = "delay"

    def cut(self) -> None:
        """Close every connection now and refuse new ones (reset) until :meth:`heal`."""
        self.mode = "cut"
        self._close_all()

    def heal(self) -> None:
        """Forward again; connections that lost bytes meanwhile are closed (clients reconnect)."""
        if self.mode == "blackhole":
            self._close_all()
        self.mode = "forward"

    def stop(self) -> None:
        self._closed = True
        self._listener.close()
        self._close_all()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "cut":
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select(list(peers), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if self.mode == "delay":
                        time.sleep(self.lag)
                        if self.mode == "cut":  # cut while held back: the bytes are lost
                            return
                    if self.mode in ("forward", "delay"):
                        peers[sock].sendall(data)
                    # blackhole: swallow the bytes, answer nothing
        except (OSError, ValueError):
            return
        finally:
            for sock in peers:
                sock.close()
            with self._lock:
                self._sockets.difference_update(peers)
