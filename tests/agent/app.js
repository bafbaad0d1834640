// app.js -- a small Node.js web app that test_agent puts behind bin/agent:
// request bodies, streamed and stalled responses, trailers, interim
// responses and broken connections, from a server ptth did not write.
//
// Usage: node tests/agent/app.js   (listens on 127.0.0.1, a free port,
// and prints "listening PORT" on stdout once it accepts connections)
//
//   POST /echo          the body back as it arrives (chunked)
//   POST /count         {"bytes", "adler32", "length", "chunked", "expect"}:
//                       the body's size and checksum, and how it was framed
//   GET  /headers       {"method", "url", "version", "headers": [[name, value]...]}
//   GET  /bytes?n=N     N bytes, byte i = 'a' + i % 26, chunked
//   GET  /hold          "first\n" at once, "second\n" once GET /release came
//   GET  /head-first    the head at once, the body "second\n" once GET /release came
//   GET  /release       lets every /hold and /head-first finish, cuts /cut
//   GET  /barrier?n=N   answers once N requests wait inside /barrier at once
//   GET  /stall         never answers
//   GET  /stall-body    a head and "partial", then nothing
//   GET  /cut           Content-Length: 1000, 100 bytes, then the socket
//                       closes once GET /release came
//   GET  /cut-chunked   two chunks, then the same
//   GET  /trailers      a chunked body, then the trailer X-Checksum: 12345
//   GET  /early-hints   103 Early Hints, then 200 "hinted"
//   GET  /hop           Connection: X-Private, X-Private and Keep-Alive set
//   GET  /status?code=N that status, a body unless 204 or 304
//   GET  /connections   how many connections this server has accepted
'use strict';

const http = require('http');

let connections = 0;
let held = [];
let barrier = [];

function pattern(from, len) {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = 97 + ((from + i) % 26);
  return b;
}

function sendBytes(res, n) {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  let sent = 0;
  const more = () => {
    while (sent < n) {
      const len = Math.min(65536 - (65536 % 26), n - sent);
      const ok = res.write(pattern(sent, len));
      sent += len;
      if (!ok) return res.once('drain', more);
    }
    res.end();
  };
  more();
}

const routes = {
  'POST /echo': (req, res) => {
    res.writeHead(200, { 'content-type': req.headers['content-type'] || 'application/octet-stream' });
    req.pipe(res);
  },
  'POST /count': (req, res) => {
    // Adler-32 of the body (RFC 1950), order-sensitive and cheap.
    let a = 1, b = 0, bytes = 0;
    req.on('data', (d) => {
      bytes += d.length;
      for (let i = 0; i < d.length; i++) {
        a += d[i];
        b += a;
        if ((i & 2047) === 2047) { a %= 65521; b %= 65521; }
      }
      a %= 65521; b %= 65521;
    });
    req.on('end', () => {
      const body = JSON.stringify({
        bytes, adler32: ((b << 16) | a) >>> 0,
        length: req.headers['content-length'] || null,
        chunked: req.headers['transfer-encoding'] === 'chunked',
        expect: req.headers.expect || null,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    });
  },
  'GET /headers': (req, res) => {
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    const body = JSON.stringify({ method: req.method, url: req.url, version: req.httpVersion, headers });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  },
  'GET /bytes': (req, res, q) => sendBytes(res, Number(q.get('n') || 1048576)),
  'GET /hold': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first\n');
    held.push(res);
  },
  'GET /head-first': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.flushHeaders();
    held.push(res);
  },
  'GET /release': (req, res) => {
    const n = held.length;
    for (const r of held) {
      if (r.cut) r.socket.destroy();
      else r.end('second\n');
    }
    held = [];
    res.end(`released ${n}\n`);
  },
  'GET /barrier': (req, res, q) => {
    barrier.push(res);
    if (barrier.length >= Number(q.get('n') || 1)) {
      for (const r of barrier) r.end('ok\n');
      barrier = [];
    }
  },
  'GET /stall': () => {},
  'GET /stall-body': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
  },
  'GET /cut': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 1000 });
    res.write(pattern(0, 100));
    held.push(res);
    res.cut = true;
  },
  'GET /cut-chunked': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('one\n');
    res.write('two\n');
    held.push(res);
    res.cut = true;
  },
  'GET /trailers': (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'X-Checksum' });
    res.write('body\n');
    res.addTrailers({ 'X-Checksum': '12345' });
    res.end();
  },
  'GET /early-hints': (req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hinted\n');
  },
  'GET /hop': (req, res) => {
    res.writeHead(200, {
      'content-type': 'text/plain', connection: 'X-Private', 'x-private': 'secret',
      'keep-alive': 'timeout=5', 'x-public': 'yes',
    });
    res.end('hop\n');
  },
  'GET /status': (req, res, q) => {
    const code = Number(q.get('code') || 200);
    res.writeHead(code, { 'content-type': 'text/plain' });
    res.end(code === 204 || code === 304 ? undefined : `status ${code}\n`);
  },
  'GET /connections': (req, res) => res.end(`${connections}\n`),
};

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://app');
  const route = routes[`${req.method} ${url.pathname}`];
  if (route === undefined) {
    res.writeHead(404, { 'content-type': 'text/plain' });
    return res.end('not found\n');
  }
  route(req, res, url.searchParams);
});
server.on('connection', () => { connections++; });
server.requestTimeout = 0;   // the tests stall on purpose
server.headersTimeout = 60000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
