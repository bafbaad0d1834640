/*
 * tunnel_handshake.c -- the router's side of the PTTH handshake: tell a
 * raw dialler from one that introduces itself, read and check its
 * request, decide on its token, and answer 101 or a refusal.
 *
 * Owns:    nothing; the caller owns the socket and the struct tunnel_hello.
 * Threads: the tunnel's own thread, before its HTTP/2 session exists
 *          (tunnel_greet() in tunnel.c), so that one slow dialler holds
 *          up only its own thread, never the tunnel accept thread.
 * Locks:   none.
 * Interface:
 *   - tunnel_handshake_read(): waits up to raw_wait_ms for a first byte.
 *     None, or any byte but 'G', means raw, and nothing is taken from the
 *     socket: the session reads those bytes as HTTP/2. A raw dialler is an
 *     HTTP/2 server whose first bytes are a frame header, and a frame
 *     header starts with the high byte of a 24-bit length that is 0 for
 *     every frame up to 64 KiB (SETTINGS_MAX_FRAME_SIZE is 16384 until the
 *     router raises it), never 'G' (0x47). 'G' starts "GET /ptth...": the
 *     head is read (TUNNEL_HANDSHAKE_MAX_BYTES, timeout_ms) and checked;
 *   - tunnel_handshake_check(): the request as draft-kazuho-ptth-ptth-01
 *     has it in HTTP/1.1: GET, HTTP/1.1, Host, Connection: upgrade,
 *     Upgrade: ptth, ALPN (RFC 7639) offering h2, at most one
 *     Authorization: Bearer; the target names the service;
 *   - tunnel_handshake_authorize(): 401 or 403 from the tokens, if any;
 *   - tunnel_handshake_answer(): writes "101 Switching Protocols" with
 *     ALPN: h2, or the refusal with a one-line text body.
 * Tutorial: "A backend introduces itself".
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "ptth.h"
#include "headers.h"
#include "lock.h"
#include "net.h"
#include "tokens.h"
#include "tunnel_handshake.h"

/* Records a refusal. Returns its status, for the caller to return. */
static int
tunnel_hello_refuse(struct tunnel_hello *hello, int status, const char *why)
{
	hello->status = status;
	hello->why = why;
	return status;
}

/* Reads the service name from the request target: "/" and "/ptth" are
 * the default pool, "/ptth/NAME" the service NAME. Returns 0 or 400. */
static int
tunnel_handshake_target(const char *target, struct tunnel_hello *hello)
{
	static const char prefix[] = HANDSHAKE_PATH_PREFIX "/";
	size_t len;

	if (strcmp(target, "/") == 0 || strcmp(target, HANDSHAKE_PATH_PREFIX) == 0)
		return 0;
	if (strncmp(target, prefix, sizeof prefix - 1) != 0)
		return tunnel_hello_refuse(hello, 400, "the target must be /ptth/SERVICE or /ptth");
	target += sizeof prefix - 1;
	len = strlen(target);
	if (!handshake_service_valid(target, len))
		return tunnel_hello_refuse(hello, 400,
		                           "the service must be a DNS-style name (a-z, 0-9, '-', '.')");
	memcpy(hello->service, target, len + 1);
	return 0;
}

/* How many fields called name the list holds. */
static size_t
tunnel_handshake_count(const struct header_list *l, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < l->count; i++)
		n += strcasecmp(l->items[i].name, name) == 0;
	return n;
}

/* True when the fields called name, joined, list token (any case). */
static bool
tunnel_handshake_lists(const struct header_list *l, const char *name, const char *token)
{
	char *joined = header_list_join(l, name);
	bool found = joined != NULL && headers_token_in_list(joined, token);

	free(joined);
	return found;
}

/* Checks ALPN and Authorization. Returns 0 or 400. */
static int
tunnel_handshake_alpn_auth(const struct header_list *f, struct tunnel_hello *hello)
{
	char *alpn = header_list_join(f, "alpn");
	int h2 = alpn ? handshake_alpn_find_h2(alpn) : -2;
	const char *auth = header_list_get(f, "authorization");

	free(alpn);
	if (h2 == -2)
		return tunnel_hello_refuse(hello, 400, "no ALPN field");
	if (h2 < 0)
		return tunnel_hello_refuse(hello, 400, "a malformed ALPN field");
	if (h2 == 0)
		return tunnel_hello_refuse(hello, 400, "ALPN does not offer h2");
	if (auth == NULL)
		return 0;
	if (tunnel_handshake_count(f, "authorization") > 1)
		return tunnel_hello_refuse(hello, 400, "more than one Authorization field");
	if (strncasecmp(auth, "Bearer ", 7) != 0 || !handshake_token_valid(auth + 7, strlen(auth + 7)))
		return tunnel_hello_refuse(hello, 400, "Authorization must be Bearer TOKEN");
	hello->has_token = true;
	memcpy(hello->token, auth + 7, strlen(auth + 7) + 1);
	return 0;
}

/* Checks the fields of a handshake request. Returns 0 or 400. */
static int
tunnel_handshake_fields(const struct header_list *f, struct tunnel_hello *hello)
{
	if (tunnel_handshake_count(f, "host") != 1)
		return tunnel_hello_refuse(hello, 400, "exactly one Host field is needed");
	if (!tunnel_handshake_lists(f, "connection", "upgrade"))
		return tunnel_hello_refuse(hello, 400, "Connection must list upgrade");
	if (!tunnel_handshake_lists(f, "upgrade", "ptth"))
		return tunnel_hello_refuse(hello, 400, "Upgrade must list ptth");
	if (header_list_get(f, "content-length") || header_list_get(f, "transfer-encoding"))
		return tunnel_hello_refuse(hello, 400, "a handshake has no body");
	return tunnel_handshake_alpn_auth(f, hello);
}

/* Parses and checks a complete handshake head of len bytes in buf
 * (rewritten in place). Fills hello: service, token. Returns 0, or the
 * refusal status (400) also recorded in hello. */
int
tunnel_handshake_check(char *buf, size_t len, struct tunnel_hello *hello)
{
	struct handshake_head h;
	const char *why = "out of memory";
	int rc;

	hello->handshake = true;
	rc = handshake_head_parse(buf, len, &h, &why);
	if (rc < 0)
		rc = tunnel_hello_refuse(hello, 400, why);
	else if (strcmp(h.start[0], "GET") != 0)
		rc = tunnel_hello_refuse(hello, 400, "the handshake must be a GET");
	else if (strcmp(h.start[2], "HTTP/1.1") != 0)
		rc = tunnel_hello_refuse(hello, 400, "the handshake must be HTTP/1.1");
	else if ((rc = tunnel_handshake_target(h.start[1], hello)) == 0)
		rc = tunnel_handshake_fields(&h.fields, hello);
	handshake_head_free(&h);
	return rc;
}

/* Waits up to conf->raw_wait_ms for the dialler's first byte and looks
 * at it without taking it. Returns 1 for a handshake ('G'), 0 for raw
 * (another byte, or silence), PTTH_ECLOSED, -ESHUTDOWN or -errno. */
static int
tunnel_handshake_classify(int fd, const struct tunnel_handshake_conf *conf)
{
	struct pollfd fds[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = conf->stop_fd, .events = POLLIN },
	};
	long long deadline = now_ms() + conf->raw_wait_ms;
	char first;

	for (;;) {
		long long left = deadline - now_ms();
		int n = poll(fds, conf->stop_fd >= 0 ? 2 : 1, left > 0 ? (int)left : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;                 /* silence: an HTTP/2 server waiting for us */
		if (conf->stop_fd >= 0 && (fds[1].revents & POLLIN))
			return -ESHUTDOWN;
		ssize_t got = recv(fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			return got == 0 ? PTTH_ECLOSED : -errno;
		return first == 'G';
	}
}

/* Tells a raw dialler from a handshake and, for a handshake, reads and
 * checks it (tunnel_handshake_check). hello says which, and carries the
 * refusal status when there is one: 400, 408 (not complete within
 * timeout_ms), 431 (larger than TUNNEL_HANDSHAKE_MAX_BYTES).
 * Returns 0 when hello is filled in, or PTTH_ECLOSED, -ESHUTDOWN or
 * -errno when there is no one left to answer. */
int
tunnel_handshake_read(int fd, const struct tunnel_handshake_conf *conf,
                      struct tunnel_hello *hello)
{
	long long deadline = now_ms() + conf->timeout_ms;
	char buf[TUNNEL_HANDSHAKE_MAX_BYTES];
	size_t len = 0;
	int rc;

	memset(hello, 0, sizeof *hello);
	rc = tunnel_handshake_classify(fd, conf);
	if (rc <= 0)
		return rc;
	hello->handshake = true;
	rc = handshake_read_head(fd, buf, sizeof buf, deadline, conf->stop_fd, &len);
	if (rc == -ETIMEDOUT)
		tunnel_hello_refuse(hello, 408, "handshake not received in time");
	else if (rc == PTTH_ETOOBIG)
		tunnel_hello_refuse(hello, 431, "handshake too large");
	else if (rc < 0)
		return rc;
	else
		tunnel_handshake_check(buf, len, hello);
	return 0;
}

/* Decides on the handshake's token. Without a tokens file (tokens NULL)
 * every handshake is allowed, token or not. With one: no token, or one
 * the file does not list, is 401; a token not allowed to serve the
 * service named (or the default pool, for which it needs "*") is 403.
 * Returns 0 or the status, also recorded in hello. */
int
tunnel_handshake_authorize(struct tunnel_hello *hello, const struct tokens *tokens)
{
	if (tokens == NULL)
		return 0;
	if (!hello->has_token)
		return tunnel_hello_refuse(hello, 401, "a bearer token is needed");
	switch (tokens_check(tokens, hello->token, hello->service)) {
	case TOKENS_ALLOWED:
		return 0;
	case TOKENS_UNKNOWN:
		return tunnel_hello_refuse(hello, 401, "unknown token");
	default:
		snprintf(hello->why_buf, sizeof hello->why_buf, "this token may not serve %s%s",
		         hello->service[0] ? "service " : "the default pool", hello->service);
		return tunnel_hello_refuse(hello, 403, hello->why_buf);
	}
}

/* Formats the router's answer into buf: the 101 when hello->status is
 * 0, else the refusal, "CODE REASON: TEXT" as a one-line body, with
 * WWW-Authenticate: Bearer on a 401 (RFC 6750 section 3).
 * Returns the length, or -ENOBUFS when cap is too small. */
int
tunnel_handshake_format(const struct tunnel_hello *hello, char *buf, size_t cap)
{
	char body[512];
	int blen, n;

	if (hello->status == 0) {
		n = snprintf(buf, cap, "HTTP/1.1 101 Switching Protocols\r\n"
		                       "Connection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n\r\n");
		return n < 0 || (size_t)n >= cap ? -ENOBUFS : n;
	}
	blen = snprintf(body, sizeof body, "%d %s: %s\n", hello->status,
	                headers_reason_phrase(hello->status), hello->why);
	if (blen < 0 || (size_t)blen >= sizeof body)
		return -ENOBUFS;
	n = snprintf(buf, cap,
	             "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
	             "Content-Length: %d\r\n%sConnection: close\r\n\r\n%s",
	             hello->status, headers_reason_phrase(hello->status), blen,
	             hello->status == 401 ? "WWW-Authenticate: Bearer\r\n" : "", body);
	return n < 0 || (size_t)n >= cap ? -ENOBUFS : n;
}

/* Writes the answer tunnel_handshake_format() makes. The socket is
 * blocking and the answer is small, so one write normally takes it all;
 * SO_SNDTIMEO is not needed because nothing has been sent to fill the
 * peer's window yet. Returns 0 or a negative code. */
int
tunnel_handshake_answer(int fd, const struct tunnel_hello *hello)
{
	char buf[1024];
	int n = tunnel_handshake_format(hello, buf, sizeof buf);

	return n < 0 ? n : net_write_all(fd, buf, (size_t)n);
}
