"""The few RESP replies the proxy sends. For these (+OK, +PONG, :N, -ERR) RESP2 and RESP3 are
byte-identical; only HELLO's reply differs (a map in RESP3)."""

from __future__ import annotations

OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
NOAUTH = b"-NOAUTH Authentication required.\r\n"
NOAUTH_HELLO = (
    b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> "
    b"AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol "
    b"version at the same time\r\n"
)
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
NOPROTO = b"-NOPROTO sorry, this protocol version is not supported.\r\n"
PROTOCOL_ERROR = b"-ERR Protocol error: expected an array of bulk strings or an inline command\r\n"
BUFFER_FULL = (
    b"-ERR proxy buffer full: Kafka is slow or down (see logproxy_kafka_up); nothing was stored, retry\r\n"
)
PUSH_COMMANDS = frozenset({b"LPUSH", b"RPUSH", b"LPUSHX", b"RPUSHX"})


def integer(n: int) -> bytes:
    return b":%d\r\n" % n


def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def error(message: str) -> bytes:
    # A reply line must not contain CR or LF: the message may quote what the client sent.
    clean = "".join(ch if ch.isprintable() else "?" for ch in message)
    return f"-ERR {clean}\r\n".encode("utf-8", "replace")


def unknown_command(name: bytes) -> bytes:
    return error(f"unknown command '{name[:64].decode('utf-8', 'replace')}'")


def wrong_arguments(name: bytes) -> bytes:
    return error(f"wrong number of arguments for '{name.decode('ascii', 'replace').lower()}' command")


def hello(protocol: int, connection_id: int) -> bytes:
    """What redis 7.2 answers to HELLO: redis-py and Lettuce send ``HELLO 3`` first and stop on an error."""
    fields = [
        (b"server", bulk(b"redis")),
        (b"version", bulk(b"7.2.0")),
        (b"proto", integer(protocol)),
        (b"id", integer(connection_id)),
        (b"mode", bulk(b"standalone")),
        (b"role", bulk(b"master")),
        (b"modules", b"*0\r\n"),
    ]
    head = b"%%%d\r\n" % len(fields) if protocol == 3 else b"*%d\r\n" % (2 * len(fields))
    return head + b"".join(bulk(name) + value for name, value in fields)
