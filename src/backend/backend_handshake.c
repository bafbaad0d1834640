/*
 * backend_handshake.c -- the backend's side of the PTTH handshake: ask
 * the router to take this connection as a tunnel for a service, with a
 * token, and check its answer before serving HTTP/2 on it.
 *
 * Owns:    nothing; the slot thread owns the socket.
 * Threads: the backend's slot thread right after it dialled (or the
 *          caller's thread in ptth_backend_start() without reconnect).
 * Locks:   none.
 * Interface:
 *   - backend_handshake(): writes "GET /ptth/SERVICE HTTP/1.1" with Host,
 *     Connection: upgrade, Upgrade: ptth, ALPN: h2 and, with a token,
 *     Authorization: Bearer (draft-kazuho-ptth-ptth-01, HTTP/1.1 form);
 *     reads the answer head (handshake_read_head(), which leaves the
 *     router's first HTTP/2 bytes in the socket) and checks it;
 *   - a 101 must say Upgrade: ptth and ALPN: h2, else PTTH_EPROTO;
 *     401 is PTTH_EAUTH, 403 PTTH_EFORBIDDEN, anything else PTTH_EPROTO;
 *     msg then holds the router's one-line reason for the log.
 * Tutorial: "A backend introduces itself".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ptth.h"
#include "backend_handshake.h"
#include "handshake.h"
#include "lock.h"
#include "net.h"

/* The answer head and a refusal's short body, at most. */
#define BACKEND_HANDSHAKE_HEAD_MAX 4096
#define BACKEND_HANDSHAKE_BODY_MAX 512

/* Formats the handshake request: the target names the service ("/ptth"
 * for the default pool), host is the router's address as dialled.
 * service and token may be NULL or "". Returns the length or -ENOBUFS. */
int
backend_handshake_format(const char *host, const char *service, const char *token,
                         char *buf, size_t cap)
{
	bool named = service != NULL && service[0] != '\0';
	bool auth = token != NULL && token[0] != '\0';
	int n = snprintf(buf, cap,
	                 "GET " HANDSHAKE_PATH_PREFIX "%s%s HTTP/1.1\r\nHost: %s\r\n"
	                 "Connection: upgrade\r\nUpgrade: ptth\r\nALPN: h2\r\n"
	                 "%s%s%s\r\n",
	                 named ? "/" : "", named ? service : "", host,
	                 auth ? "Authorization: Bearer " : "", auth ? token : "",
	                 auth ? "\r\n" : "");

	return n < 0 || (size_t)n >= cap ? -ENOBUFS : n;
}

/* Checks a 101's fields. Returns 0 or PTTH_EPROTO with msg set. */
static int
backend_handshake_check_101(const struct header_list *f, char *msg, size_t msg_len)
{
	const char *upgrade = header_list_get(f, "upgrade");
	const char *alpn = header_list_get(f, "alpn");

	if (upgrade == NULL || !headers_token_in_list(upgrade, "ptth")) {
		snprintf(msg, msg_len, "the router's 101 does not say Upgrade: ptth");
		return PTTH_EPROTO;
	}
	if (alpn == NULL || handshake_alpn_find_h2(alpn) != 1 || strchr(alpn, ',') != NULL) {
		snprintf(msg, msg_len, "the router's 101 did not choose ALPN h2");
		return PTTH_EPROTO;
	}
	return 0;
}

/* Checks the router's answer head (len bytes in buf, rewritten in place);
 * body is a refusal's text or "". Returns 0 for a proper 101, else
 * PTTH_EAUTH (401), PTTH_EFORBIDDEN (403) or PTTH_EPROTO, with msg
 * saying what the router said. */
int
backend_handshake_check(char *buf, size_t len, const char *body, char *msg, size_t msg_len)
{
	struct handshake_head h;
	const char *why = "out of memory";
	int rc = handshake_head_parse(buf, len, &h, &why);

	if (rc < 0) {
		snprintf(msg, msg_len, "a malformed answer from the router: %s", why);
	} else if (strcmp(h.start[0], "HTTP/1.1") != 0) {
		snprintf(msg, msg_len, "the router did not answer in HTTP/1.1");
		rc = PTTH_EPROTO;
	} else if (strcmp(h.start[1], "101") == 0) {
		rc = backend_handshake_check_101(&h.fields, msg, msg_len);
	} else {
		int status = (int)strtol(h.start[1], NULL, 10);
		rc = status == 401 ? PTTH_EAUTH : status == 403 ? PTTH_EFORBIDDEN : PTTH_EPROTO;
		if (body[0] != '\0')
			snprintf(msg, msg_len, "the router refused the tunnel: %.400s", body);
		else
			snprintf(msg, msg_len, "the router refused the tunnel: %.3s %.60s",
			         h.start[1], h.start[2]);
	}
	handshake_head_free(&h);
	return rc;
}

/* Reads a refusal's body (Content-Length bytes, at most cap - 1) into
 * body, best effort, without its line end: only for the message. */
static void
backend_handshake_read_body(int fd, const char *head, size_t head_len, char *body,
                            size_t cap, long long deadline)
{
	const char *cl = memmem(head, head_len, "Content-Length:", 15);
	size_t want = cl ? (size_t)strtoul(cl + 15, NULL, 10) : 0, got = 0;

	body[0] = '\0';
	if (want >= cap)
		want = cap - 1;
	net_set_recv_timeout(fd, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 1));
	while (got < want) {
		ssize_t n = recv(fd, body + got, want - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	net_set_recv_timeout(fd, 0);
	while (got > 0 && (body[got - 1] == '\n' || body[got - 1] == '\r'))
		got--;
	body[got] = '\0';
}

/* Performs the handshake on a freshly dialled socket. host goes into
 * Host; service and token may be NULL. The router must answer within
 * timeout_ms; stop_fd (-1: none) readable ends the wait. Returns 0 (the
 * socket now carries HTTP/2, the router's preface possibly already
 * waiting in it), or a negative code with msg saying why: PTTH_EAUTH,
 * PTTH_EFORBIDDEN, PTTH_EPROTO, -ETIMEDOUT, -ESHUTDOWN (stop_fd),
 * PTTH_ECLOSED or -errno. */
int
backend_handshake(int fd, const char *host, const char *service, const char *token,
                  int timeout_ms, int stop_fd, char *msg, size_t msg_len)
{
	long long deadline = now_ms() + timeout_ms;
	char req[1024 + HANDSHAKE_TOKEN_MAX], head[BACKEND_HANDSHAKE_HEAD_MAX];
	char body[BACKEND_HANDSHAKE_BODY_MAX];
	size_t len = 0;
	int n = backend_handshake_format(host, service, token, req, sizeof req);
	int rc = n < 0 ? n : net_write_all(fd, req, (size_t)n);

	if (rc == 0)
		rc = handshake_read_head(fd, head, sizeof head, deadline, stop_fd, &len);
	if (rc < 0) {
		snprintf(msg, msg_len, "no answer to the handshake: %s", ptth_strerror(rc));
		return rc;
	}
	body[0] = '\0';
	if (len < 13 || memcmp(head + 9, "101", 3) != 0)
		backend_handshake_read_body(fd, head, len, body, sizeof body, deadline);
	return backend_handshake_check(head, len, body, msg, msg_len);
}
