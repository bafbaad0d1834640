#!/usr/bin/python3
"""asgi_echo.py -- an independent RFC 8441 server for tests/test_websocket.c:
hypercorn (Debian python3-hypercorn) serving an ASGI WebSocket echo, over
HTTP/2 without TLS (h2c with prior knowledge: hypercorn sees the client
preface and switches to HTTP/2, where it announces
SETTINGS_ENABLE_CONNECT_PROTOCOL and takes extended CONNECT).

It listens on 127.0.0.1, port 0, prints "PORT n" once listening, and
serves until killed. Plain HTTP requests get 200 "ok".
"""
import asyncio
import socket

from hypercorn.asyncio import serve
from hypercorn.config import Config


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    # A WebSocket: accept, then echo until the user closes.
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes")})


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = Config()
    config.bind = ["fd://%d" % sock.fileno()]
    print("PORT %d" % sock.getsockname()[1], flush=True)
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
