#!/usr/bin/python3
"""h2_backend.py -- a backend without WebSockets, for tests/test_websocket.c:
it dials the router's tunnel port, serves HTTP/2 there with python3-h2
(the router is the client) and does not announce
SETTINGS_ENABLE_CONNECT_PROTOCOL. Every request gets 200 "plain"; an
extended CONNECT, which the router must never send here, would be
answered 200 too and counted on stderr.

Usage: h2_backend.py PORT
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events


def main():
    sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                fields = dict(event.headers)
                if fields.get(b":protocol") is not None:
                    print("extended CONNECT received", file=sys.stderr, flush=True)
                conn.send_headers(event.stream_id, [(":status", "200"),
                                                    ("content-length", "5")])
                conn.send_data(event.stream_id, b"plain", end_stream=True)
        sock.sendall(conn.data_to_send())


if __name__ == "__main__":
    main()
