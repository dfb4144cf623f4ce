"""Ports for the sandbox's servers come from below the kernel's ephemeral range and are free when chosen."""

import socket

from sandbox import procs


def test_a_chosen_port_is_below_the_ephemeral_range_and_bindable():
    floor = procs._ephemeral_port_floor()
    for _ in range(20):
        port = procs.free_port()
        assert procs._LOWEST_PORT <= port < floor
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_passed_over(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        offered = iter([taken, free])

        class Scripted:
            def randrange(self, start, stop):
                return next(offered)

        monkeypatch.setattr(procs.random, "SystemRandom", Scripted)
        assert procs.free_port() == free
