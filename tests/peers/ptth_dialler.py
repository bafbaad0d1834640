#!/usr/bin/env python3
"""ptth_dialler.py -- a PTTH backend written independently of ptth, with
python3-h2 (Debian's package): it dials the router's tunnel port, performs
the PTTH handshake by hand (draft-kazuho-ptth-ptth-01, HTTP/1.1 form),
checks the 101, then serves HTTP/2 as the server on the same connection.
Every request is answered 200 with "python-h2 SERVICE METHOD PATH".

Usage: ptth_dialler.py HOST PORT SERVICE [TOKENS_FILE]
TOKENS_FILE is read for the first word of its first line (a router's
tokens file line "TOKEN SERVICE" does). Exits 0 when the router ends the
tunnel (GOAWAY or EOF), 1 when the handshake is refused or malformed.
"""
import socket
import sys

import h2.config
import h2.connection
import h2.events


def handshake(sock, host, port, service, token):
    """Sends the request, reads the answer head; returns bytes after it."""
    lines = [f"GET /ptth/{service} HTTP/1.1", f"Host: {host}:{port}",
             "Connection: upgrade", "Upgrade: ptth", "ALPN: h2, http%2F1.1"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("ptth_dialler: the router closed during the handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status, *fields = head.decode("latin-1").split("\r\n")
    answer = {}
    for field in fields:
        name, _, value = field.partition(":")
        answer[name.strip().lower()] = value.strip()
    if not status.startswith("HTTP/1.1 101 "):
        sys.exit(f"ptth_dialler: refused: {status}")
    if answer.get("upgrade", "").lower() != "ptth" or answer.get("alpn") != "h2":
        sys.exit(f"ptth_dialler: a 101 without Upgrade: ptth and ALPN: h2: {answer}")
    return rest


def serve(sock, service, data):
    """Serves HTTP/2 until the router ends the connection."""
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while True:
        for event in conn.receive_data(data) if data else []:
            if isinstance(event, h2.events.RequestReceived):
                fields = dict(event.headers)
                body = f"python-h2 {service} {fields[':method']} {fields[':path']}\n"
                body = body.encode("utf-8")
                conn.send_headers(event.stream_id, [
                    (":status", "200"), ("content-type", "text/plain"),
                    ("content-length", str(len(body)))])
                conn.send_data(event.stream_id, body, end_stream=True)
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length,
                                               event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        out = conn.data_to_send()
        if out:
            sock.sendall(out)
        data = sock.recv(65536)
        if not data:
            return


def main():
    host, port, service = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    token = None
    if len(sys.argv) > 4:
        with open(sys.argv[4], encoding="ascii") as f:
            token = f.readline().split()[0]
    sock = socket.create_connection((host, port))
    rest = handshake(sock, host, port, service, token)
    serve(sock, service, rest)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
