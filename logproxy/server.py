"""The Redis side: one ``Connection`` protocol per client, the listening server, SIGTERM and ``main``."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import signal
import sys
import time
from collections import deque

import hiredis

from logproxy import resp
from logproxy.config import Config, ConfigError, from_env
from logproxy.metrics import Metrics, serve_http
from logproxy.shipper import Shipper, Ticket

log = logging.getLogger("logproxy")

_INLINE_MAX = 64 * 1024
# asyncio hands data_received at most this much at a time (selector transports' max_size).
_READ_SLACK = 256 * 1024
_CLOSE_GRACE = 2.0
# What an inline command (or the blank line between two) may start with; RESP frames start with a type byte.
_INLINE_START = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz \t\r\n")
_ids = itertools.count(1)


class _Entry:
    """The replies to one read chunk, in order: bytes, or an int N for a push answered when ``ticket``
    resolves (``:N`` on success, the ticket's error otherwise)."""

    __slots__ = ("ticket", "parts", "values", "nbytes", "close")

    def __init__(self, ticket: Ticket | None, parts: list, values: int, nbytes: int, close: bool) -> None:
        self.ticket = ticket
        self.parts = parts
        self.values = values
        self.nbytes = nbytes
        self.close = close


class Connection(asyncio.Protocol):
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.config = proxy.config
        self.shipper = proxy.shipper
        self.metrics = proxy.metrics
        self.id = next(_ids)
        self.reader = hiredis.Reader()
        self.entries: deque[_Entry] = deque()
        self.inflight = 0
        self.inflight_bytes = 0
        self.authed = proxy.config.password is None
        self.partial = 0  # an upper bound on the bytes of the frame hiredis is still waiting for
        self.inline: bytes | None = None
        self.closing = False
        self._finishing = False
        self._grace: asyncio.TimerHandle | None = None
        self.read_paused = False
        self.write_paused = False
        self.transport: asyncio.Transport | None = None
        self._frame_limit = self.config.max_inflight_bytes + 64 * 1024 + _READ_SLACK

    # transport callbacks -----------------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.proxy.connections.add(self)
        self.metrics.connections.inc()
        self.metrics.connections_total.inc()
        if self.proxy.draining:
            self.drain()

    def connection_lost(self, exc) -> None:
        self.closing = True
        if self._grace is not None:
            self._grace.cancel()
        self.proxy.connections.discard(self)
        self.metrics.connections.dec()
        if self.read_paused:
            self.metrics.paused.dec()
            self.read_paused = False
        self.metrics.inflight.dec(self.inflight)
        self.proxy.release(self.inflight_bytes)
        self.proxy.blocked.discard(self)
        self.inflight = self.inflight_bytes = 0
        self.entries.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        self.update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.update_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        commands, failure = self._parse(data)
        self._execute(commands, failure)

    # parsing -----------------------------------------------------------------------------------------

    def _parse(self, data: bytes) -> tuple[list, bytes | None]:
        commands: list = []
        reader = self.reader
        while data:
            if self.inline is not None:
                data, self.inline = self.inline + data, None
            elif data[0] not in _INLINE_START or reader.has_data():
                break
            # An inline command (``PING`` typed into nc, a health check): one line of words.
            newline = data.find(b"\n")
            if newline < 0:
                if len(data) > _INLINE_MAX:
                    self.metrics.errors.labels("protocol").inc()
                    return commands, resp.error("Protocol error: too big inline request")
                self.inline = data
                return commands, None
            words = data[:newline].split()
            data = data[newline + 1 :]
            if words:
                commands.append(words)
            self.reader = reader = hiredis.Reader()
        if not data:
            return commands, None
        reader.feed(data)
        found = len(commands)
        try:
            while (command := reader.gets()) is not False:
                if type(command) is not list:
                    raise hiredis.ProtocolError("not an array")
                if command:
                    commands.append(command)
        except hiredis.ProtocolError:
            self.metrics.errors.labels("protocol").inc()
            return commands, resp.PROTOCOL_ERROR
        if len(commands) > found:
            self.partial = len(data) if reader.has_data() else 0
        else:
            self.partial += len(data)
        if self.partial > self._frame_limit:
            self.metrics.errors.labels("oversized").inc()
            limit = self.config.max_inflight_bytes
            return commands, resp.error(
                f"command too large: over {limit} bytes (LOGPROXY_MAX_INFLIGHT_BYTES)"
            )
        return commands, None

    # commands ----------------------------------------------------------------------------------------

    def _execute(self, commands: list, failure: bytes | None) -> None:
        parts: list = []
        ticket: Ticket | None = None
        values_total = nbytes_total = 0
        close = False
        max_value = self.config.max_value_bytes
        shipper = self.shipper
        for command in commands:
            name = command[0]
            if type(name) is not bytes:
                failure = resp.PROTOCOL_ERROR
                break
            if name not in resp.PUSH_COMMANDS:
                name = name.upper()
                if name not in resp.PUSH_COMMANDS:
                    reply = self._other(name, command)
                    if reply is None:  # QUIT
                        parts.append(resp.OK)
                        close = True
                        break
                    parts.append(reply)
                    continue
            if not self.authed:
                self.metrics.errors.labels("noauth").inc()
                parts.append(resp.NOAUTH)
                continue
            if len(command) < 3:
                self.metrics.errors.labels("wrong_arguments").inc()
                parts.append(resp.wrong_arguments(name))
                continue
            key = command[1]
            values = command[2:]
            nbytes = 0
            for value in values:
                if type(value) is not bytes:
                    failure = resp.PROTOCOL_ERROR
                    break
                if len(value) > max_value:
                    self.metrics.errors.labels("oversized").inc()
                    failure = resp.error(
                        f"value too large: {len(value)} bytes, at most {max_value} (LOGPROXY_MAX_VALUE_BYTES)"
                    )
                    break
                nbytes += len(value)
            if failure is not None or type(key) is not bytes:
                failure = failure or resp.PROTOCOL_ERROR
                break
            if not shipper.has_room(nbytes):
                self.metrics.errors.labels("buffer_full").inc()
                self.metrics.acks.labels("error").inc()
                parts.append(resp.BUFFER_FULL)
                continue
            if ticket is None:
                ticket = Ticket(self._ticket_done, time.monotonic())
            shipper.push(key, values, nbytes, ticket)
            parts.append(len(values))
            values_total += len(values)
            nbytes_total += nbytes
        if failure is not None:
            parts.append(failure)
            close = True
        if close:
            self.closing = True
            self.update_reading()
        if values_total:
            self.metrics.lines_in.inc(values_total)
            self.metrics.inflight.inc(values_total)
            self.inflight += values_total
            self.inflight_bytes += nbytes_total
            self.proxy.inflight_bytes += nbytes_total
        if not parts:
            return
        self.entries.append(_Entry(ticket, parts, values_total, nbytes_total, close))
        if ticket is not None:
            ticket.timer = asyncio.get_running_loop().call_later(self.config.ack_timeout, ticket.expire)
            ticket.release(None)  # every value is placed: from now on only Kafka's answers count
            self.update_reading()
        else:
            self._flush()

    def _other(self, name: bytes, command: list) -> bytes | None:
        """Every command but the pushes; None means QUIT."""
        if name == b"PING":
            if not self.authed:
                self.metrics.errors.labels("noauth").inc()
                return resp.NOAUTH
            return resp.bulk(command[1]) if len(command) > 1 and type(command[1]) is bytes else resp.PONG
        if name == b"QUIT":
            return None
        if name == b"AUTH":
            if len(command) not in (2, 3):
                return resp.wrong_arguments(name)
            return self._auth(command[-1])
        if name == b"HELLO":
            return self._hello(command)
        if not self.authed:
            self.metrics.errors.labels("noauth").inc()
            return resp.NOAUTH
        if name == b"SELECT":
            if len(command) != 2:
                return resp.wrong_arguments(name)
            # One proxy has no databases: any index is accepted, so a client configured with one works.
            if not (type(command[1]) is bytes and command[1].isdigit()):
                return resp.error("value is not an integer or out of range")
            return resp.OK
        if name == b"CLIENT":
            # SETNAME, SETINFO (redis-py sends it on connect), NO-EVICT…: nothing to keep, so +OK.
            return resp.OK if len(command) > 1 else resp.wrong_arguments(name)
        self.metrics.errors.labels("unknown_command").inc()
        return resp.unknown_command(name)

    def _auth(self, password) -> bytes:
        expected = self.config.password
        if expected is None:
            return resp.OK  # nothing to check: a client configured with a password still works
        if type(password) is bytes and hmac.compare_digest(password, expected.encode()):
            self.authed = True
            return resp.OK
        self.metrics.errors.labels("wrongpass").inc()
        return resp.WRONGPASS

    def _hello(self, command: list) -> bytes:
        """HELLO [protover [AUTH username password] [SETNAME clientname]]"""
        protocol = 2
        if len(command) > 1:
            try:
                protocol = int(command[1])
            except (TypeError, ValueError):
                return resp.error("Protocol version is not an integer or out of range")
            if protocol not in (2, 3):
                return resp.NOPROTO
        options = command[2:]
        while options:
            option = options[0].upper() if type(options[0]) is bytes else b""
            if option == b"AUTH" and len(options) >= 3:
                reply = self._auth(options[2])
                if reply != resp.OK:
                    return reply
                options = options[3:]
            elif option == b"SETNAME" and len(options) >= 2:
                options = options[2:]
            else:
                return resp.error(f"Syntax error in HELLO option '{options[0]!r}'")
        if not self.authed:
            self.metrics.errors.labels("noauth").inc()
            return resp.NOAUTH_HELLO
        return resp.hello(protocol, self.id)

    # replies -----------------------------------------------------------------------------------------

    def _ticket_done(self, ticket: Ticket) -> None:
        if ticket.error is None:
            self.metrics.ack_latency.observe(time.monotonic() - ticket.started)
        else:
            self.metrics.errors.labels(ticket.error).inc()
        if not self.transport.is_closing() or self.entries:
            self._flush()

    def _flush(self) -> None:
        """Write every reply whose turn has come, in request order."""
        entries = self.entries
        out = []
        close = False
        released = released_bytes = 0
        while entries:
            entry = entries[0]
            ticket = entry.ticket
            if ticket is not None and not ticket.done:
                break
            entries.popleft()
            if ticket is None:
                out.extend(entry.parts)
            else:
                if ticket.error is None:
                    ok = sum(1 for part in entry.parts if type(part) is int)
                    out.extend(resp.integer(part) if type(part) is int else part for part in entry.parts)
                    self.metrics.acks.labels("ok").inc(ok)
                else:
                    failed = self._push_error(ticket.error)
                    out.extend(failed if type(part) is int else part for part in entry.parts)
                    self.metrics.acks.labels("error").inc(sum(1 for part in entry.parts if type(part) is int))
                released += entry.values
                released_bytes += entry.nbytes
            if entry.close:
                close = True
                entries.clear()
                break
        if released:
            self.inflight -= released
            self.inflight_bytes -= released_bytes
            self.metrics.inflight.dec(released)
            self.proxy.release(released_bytes)
        transport = self.transport
        if out and not transport.is_closing():
            transport.write(b"".join(out))
        if close or (self.proxy.draining and not entries):
            self._finish()
        elif released:
            self.update_reading()

    def _push_error(self, reason: str) -> bytes:
        if reason == "kafka_timeout":
            why = self.shipper.last_error or "slow"
            return resp.error(
                f"kafka did not acknowledge within {self.config.ack_timeout:g}s (kafka: {why}); "
                "the values may still be delivered, a retry may duplicate them"
            )
        return resp.error(f"kafka refused the values ({self.shipper.last_error or reason}); retry")

    def update_reading(self) -> None:
        if self._finishing:
            return
        pause = (
            self.closing
            or self.write_paused
            or self.proxy.draining
            or self.inflight >= self.config.max_inflight
            or self.inflight_bytes >= self.config.max_inflight_bytes
            or (self.inflight and self.proxy.inflight_bytes >= self.config.max_unanswered_bytes)
        )
        if pause and self.inflight and self.proxy.inflight_bytes >= self.config.max_unanswered_bytes:
            self.proxy.blocked.add(self)
        if pause == self.read_paused or self.transport.is_closing():
            return
        self.read_paused = pause
        if pause:
            self.transport.pause_reading()
            self.metrics.paused.inc()
        else:
            self.transport.resume_reading()
            self.metrics.paused.dec()

    def _finish(self) -> None:
        """Close after the last reply. A plain close() with unread input makes the kernel send RST, which
        can destroy replies still on their way; so half-close (FIN after the replies), discard whatever the
        client still sends, and close when it does or after a grace period."""
        if self._finishing:
            return
        self._finishing = self.closing = True
        transport = self.transport
        if transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        if self.read_paused:
            self.read_paused = False
            self.metrics.paused.dec()
        transport.resume_reading()
        self._grace = asyncio.get_running_loop().call_later(_CLOSE_GRACE, transport.abort)

    def eof_received(self) -> bool:
        return False  # the client is done sending: close when our replies are out

    def drain(self) -> None:
        """SIGTERM: read nothing more, answer what was read, then close."""
        self.update_reading()
        if not self.entries:
            self._finish()


class Proxy:
    def __init__(self, config: Config, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.shipper = Shipper(config, self.metrics)
        self.connections: set[Connection] = set()
        self.draining = False
        # Values read and not yet answered, all connections: past max_unanswered_bytes the connections
        # with unanswered values are not read (Little's law: this over Kafka's rate is the ack latency,
        # which must stay under the ack deadline). A connection with none is still read, so PING and a
        # first push always get in.
        self.inflight_bytes = 0
        self.blocked: set[Connection] = set()

    def release(self, nbytes: int) -> None:
        self.inflight_bytes -= nbytes
        if self.blocked and self.inflight_bytes < self.config.max_unanswered_bytes:
            blocked, self.blocked = self.blocked, set()
            for connection in blocked:
                connection.update_reading()

    def health(self) -> tuple[int, dict]:
        payload = {
            "status": "draining" if self.draining else "ok",
            "kafka_up": self.shipper.up,
            "kafka_error": self.shipper.last_error,
            "connections": len(self.connections),
        }
        return (503 if self.draining else 200), payload

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        config = self.config
        try:
            server = await loop.create_server(
                lambda: Connection(self),
                config.listen_host,
                config.listen_port,
                reuse_address=True,
                backlog=1024,
            )
            http = await serve_http(config.metrics_host, config.metrics_port, self.metrics, self.health)
        except OSError as exc:
            log.error("cannot listen: %s", exc)
            return 1
        self.shipper.start()
        log.info(
            "listening on %s:%d (metrics on %s:%d), Kafka %s, default topic %s, %d route(s)",
            config.listen_host,
            config.listen_port,
            config.metrics_host,
            config.metrics_port,
            config.bootstrap_servers,
            config.default_topic,
            len(config.routes),
        )
        await stop.wait()
        log.info("stopping: no new connections, answering what was read, flushing to Kafka")
        self.draining = True
        server.close()
        for connection in list(self.connections):
            connection.drain()
        deadline = time.monotonic() + config.ack_timeout + 2
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.transport.abort()  # a client that does not read its replies
        left = await self.shipper.drain(config.shutdown_timeout)
        if left:
            log.error("stopped with %d values Kafka never acknowledged (their clients got -ERR)", left)
        else:
            log.info("stopped; every value handed to Kafka was acknowledged")
        http.close()
        return 0


def main() -> int:
    level = os.environ.get("LOGPROXY_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if level != "DEBUG":
        # aiokafka warns on every retry while Kafka is down; the proxy logs the state change once.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        config = from_env()
    except ConfigError as exc:
        print(f"logproxy: invalid configuration: {exc}", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_serve(config))


async def _serve(config: Config) -> int:
    # aiokafka binds its objects to the running loop, so the proxy is built inside it.
    return await Proxy(config).run()


def _loop_factory():
    """uvloop when it is installed and not switched off with LOGPROXY_UVLOOP=0."""
    if os.environ.get("LOGPROXY_UVLOOP", "1") == "0":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop
