#!/usr/bin/python3
"""ws_echo.py -- a WebSocket server for tests/test_agent.c, written with
python3-websockets (Debian): an app bin/agent puts behind the router.

Usage: ws_echo.py   (listens on 127.0.0.1, a free port, and prints
"listening PORT" once it accepts connections)

Every message is sent back unchanged, on any path but /forbidden, whose
upgrade is refused with 403.
"""
import asyncio
import http

import websockets


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def refuse(path, headers):
    if path == "/forbidden":
        return http.HTTPStatus.FORBIDDEN, [], b"no WebSockets here\n"
    return None


async def main():
    async with websockets.serve(echo, "127.0.0.1", 0, process_request=refuse,
                                max_size=None) as server:
        print("listening", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


asyncio.run(main())
