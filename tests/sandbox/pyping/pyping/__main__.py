import asyncio
import os
import signal

import hiredis


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    parser = hiredis.Reader()
    while data := await reader.read(4096):
        parser.feed(data)
        while (command := parser.gets()) is not False:
            name = command[0].upper() if isinstance(command, list) and command else b""
            writer.write(b"+PONG\r\n" if name == b"PING" else b"-ERR unknown command\r\n")
        await writer.drain()
    writer.close()


async def main() -> None:
    port = int(os.environ.get("PORT", "6379"))
    server = await asyncio.start_server(serve, "0.0.0.0", port)  # noqa: S104 - a pod's port
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(f"pyping listening on {port} (hiredis {hiredis.__version__})", flush=True)
    async with server:
        await stop.wait()


asyncio.run(main())
