"""The channel layer from a test, whatever the test thread is running.

``async_to_sync`` refuses to run in a thread whose event loop is running, which a test thread's can be once
an earlier test of the session left one there (tests/clusters/test_pipeline_tail.py failed so after the
monitoring acceptance and terminal tests); each call here runs in a thread of its own."""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync


def layer_call(method, *args, **kwargs):
    """``method`` (a coroutine function of the channel layer) called to completion, its result returned."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(async_to_sync(method), *args, **kwargs).result()
