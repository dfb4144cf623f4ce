"""A stand-in Python service for tests/sandbox/test_python_build.py until the log proxy lands: a RESP server
that answers PING with +PONG, parsing with hiredis (a compiled wheel: its import proves the image's
offline install fit the base image's interpreter)."""
