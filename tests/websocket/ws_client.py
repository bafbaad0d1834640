#!/usr/bin/python3
"""ws_client.py -- a WebSocket user for tests/test_websocket.c, written
with python3-websockets (Debian), a client nobody here wrote.

Usage: ws_client.py MODE URL [ARG]
  echo URL          a text and a binary message come back unchanged
  hypercorn URL     the same, but waits only 1 s for the server to end the
                    connection after the close handshake: hypercorn 0.13
                    never ends its stream then (the user ends it)
  big URL BYTES     one binary message of BYTES comes back unchanged
  many URL N        N WebSockets at once, each echoing 5 messages
  ping URL          a ping is answered by a pong
  close URL         the user starts the close handshake (code 1000)
  clock URL N       N server messages, then the server's close (code 1000)
  stream URL BYTES  BYTES through the echo in 1 MiB messages, sent and
                    received at once
  vanish URL        one server message, then the process kills itself
                    with unread bytes waiting (the kernel resets the socket)
Prints "OK ..." and exits 0, or prints the problem and exits 1.
"""
import asyncio
import os
import signal
import sys
import time

import websockets

TIMEOUT = 120


def pattern(n, seed):
    """n bytes that differ from message to message."""
    block = bytes((seed + i) % 251 for i in range(65536))
    return (block * (n // len(block) + 1))[:n]


async def echo(url, close_timeout=10):
    async with websockets.connect(url, close_timeout=close_timeout) as ws:
        await ws.send("héllo, wörld")
        got = await ws.recv()
        assert got == "héllo, wörld", got
        await ws.send(b"\x00\x01\xfe\xff binary")
        got = await ws.recv()
        assert got == b"\x00\x01\xfe\xff binary", got
    return "text and binary echoed"


async def big(url, size):
    data = pattern(size, 7)
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(data)
        got = await ws.recv()
    assert got == data, (len(got), size)
    return "%d bytes echoed" % size


async def one_of_many(url, i):
    async with websockets.connect(url) as ws:
        for k in range(5):
            msg = "socket %d message %d" % (i, k)
            await ws.send(msg)
            got = await ws.recv()
            assert got == msg, (got, msg)


async def many(url, n):
    await asyncio.gather(*(one_of_many(url, i) for i in range(n)))
    return "%d WebSockets echoed 5 messages each" % n


async def ping(url):
    async with websockets.connect(url) as ws:
        waiter = await ws.ping(b"are you there")
        await asyncio.wait_for(waiter, TIMEOUT)
    return "pong"


async def close(url):
    ws = await websockets.connect(url)
    await ws.send("last words")
    assert await ws.recv() == "last words"
    await ws.close(code=1000, reason="done")
    assert ws.close_code == 1000, ws.close_code
    return "closed by the user, code %d" % ws.close_code


async def clock(url, n):
    got = []
    async with websockets.connect(url) as ws:
        async for msg in ws:
            got.append(msg)
    assert len(got) == n, got
    assert all(m.startswith("tick %d " % (i + 1)) for i, m in enumerate(got)), got
    assert ws.close_code == 1000, ws.close_code
    return "%d ticks, closed by the server, code %d" % (n, ws.close_code)


async def stream(url, total):
    chunk = 1 << 20
    count = total // chunk
    async with websockets.connect(url, max_size=None) as ws:
        async def send_all():
            for i in range(count):
                await ws.send(pattern(chunk, i % 250))

        async def recv_all():
            for i in range(count):
                got = await ws.recv()
                assert len(got) == chunk and got[:16] == pattern(16, i % 250), i
        await asyncio.gather(send_all(), recv_all())
    return "%d bytes streamed both ways" % (count * chunk)


async def vanish(url):
    ws = await websockets.connect(url)
    await ws.recv()
    # Block the event loop so that the next message stays unread in the
    # socket, then die: the kernel answers unread data with a reset.
    time.sleep(2.5)
    os.kill(os.getpid(), signal.SIGKILL)


def main():
    mode, url = sys.argv[1], sys.argv[2]
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    modes = {
        "echo": lambda: echo(url),
        "hypercorn": lambda: echo(url, close_timeout=1),
        "big": lambda: big(url, arg),
        "many": lambda: many(url, arg),
        "ping": lambda: ping(url),
        "close": lambda: close(url),
        "clock": lambda: clock(url, arg),
        "stream": lambda: stream(url, arg),
        "vanish": lambda: vanish(url),
    }
    try:
        result = asyncio.run(asyncio.wait_for(modes[mode](), TIMEOUT))
    except BaseException as e:  # any failure is the test's to report
        print("FAIL %s: %r" % (mode, e), flush=True)
        sys.exit(1)
    print("OK %s" % result, flush=True)


if __name__ == "__main__":
    main()
