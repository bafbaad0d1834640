/*
 * admin.c -- the router's admin port (off unless admin_addr is set):
 * GET /metrics (Prometheus text, metrics.c), GET /tunnels (JSON) and
 * GET /healthz, for a scraper or a load balancer's health checks.
 *
 * Owns:    the admin listening socket, the admin thread ("ptth-admin"),
 *          and the one connection it is answering.
 * Threads: admin_start()/admin_stop() run on the router caller's thread;
 *          the admin thread accepts and answers one connection at a
 *          time, itself: scrapes and health checks are few and short.
 * Locks:   a->mu guards client_fd and stopping, so that admin_stop() can
 *          shut down the connection being answered; taken alone. The
 *          answers read the router through metrics.c, which takes the
 *          pool's lock and r->mu in turn, never while a->mu is held.
 * Interface:
 *   - admin_start(): bind (port 0 allowed) and start the thread;
 *   - admin_stop(): shut the listener and the connection, join the thread.
 * The port is hostile input like any other, if meant for loopback or a
 * private network: a request head must fit in ADMIN_HEAD_MAX bytes (else
 * 431) and arrive within ADMIN_TIMEOUT_MS (else 408); the request line
 * must be "METHOD /path HTTP/1.x" (else 400); only GET and HEAD are
 * allowed (else 405), only the three paths exist (else 404). Every
 * answer closes the connection.
 * Tutorial: "Watching the router".
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin.h"
#include "headers.h"
#include "lock.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "router.h"

void
admin_init(struct admin *a)
{
	a->fd = -1;
	a->port = 0;
	a->started = false;
	a->client_fd = -1;
	a->stopping = false;
	mutex_init(&a->mu);
}

void
admin_destroy(struct admin *a)
{
	mutex_destroy(&a->mu);
}

/* Reads a request head (up to the empty line) into buf, NUL-terminated.
 * Returns 0, PTTH_ETOOBIG (no end within cap - 1 bytes), -ETIMEDOUT,
 * PTTH_ECLOSED (the client left) or another negative code. */
static int
admin_read_head(int fd, char *buf, size_t cap)
{
	long long deadline = now_ms() + ADMIN_TIMEOUT_MS;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t len = 0;

	buf[0] = '\0';
	while (strstr(buf, "\r\n\r\n") == NULL && strstr(buf, "\n\n") == NULL) {
		long long left = deadline - now_ms();
		if (len + 1 >= cap)
			return PTTH_ETOOBIG;
		int rc = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return rc < 0 ? -errno : -ETIMEDOUT;
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : PTTH_ECLOSED;
		if (memchr(buf + len, '\0', (size_t)n) != NULL)
			return PTTH_EPROTO; /* a NUL in a head is never valid */
		len += (size_t)n;
		buf[len] = '\0';
	}
	return 0;
}

/* Splits the request line "METHOD SP TARGET SP HTTP/1.x" in place; the
 * target loses its query. Returns true when the line has that shape. */
static bool
admin_parse_line(char *head, const char **method, const char **path)
{
	char *end = head + strcspn(head, "\r\n");
	char *sp1, *sp2;

	*end = '\0';
	sp1 = strchr(head, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == head || sp1[1] != '/' ||
	    strchr(sp2 + 1, ' ') != NULL ||
	    (strcmp(sp2 + 1, "HTTP/1.0") != 0 && strcmp(sp2 + 1, "HTTP/1.1") != 0))
		return false;
	*sp1 = *sp2 = '\0';
	for (const char *p = head; *p != '\0'; p++)
		if (*p < 'A' || *p > 'Z')
			return false;
	sp1[1 + strcspn(sp1 + 1, "?")] = '\0';
	*method = head;
	*path = sp1 + 1;
	return true;
}

/* Writes a whole answer; the body is left out for HEAD. Best effort:
 * the connection closes right after, whatever happened. */
static void
admin_send(int fd, int status, const char *type, const char *extra, const char *body,
           size_t len, bool head_only)
{
	char head[512];
	int hlen = snprintf(head, sizeof head,
	                    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                    "%s%sCache-Control: no-store\r\nConnection: close\r\n\r\n",
	                    status, headers_reason_phrase(status), type, len,
	                    extra ? extra : "", extra ? "\r\n" : "");

	if (net_write_all(fd, head, (size_t)hlen) == 0 && !head_only)
		net_write_all(fd, body, len);
}

/* A short plain-text answer. */
static void
admin_send_text(int fd, int status, const char *extra, const char *text, bool head_only)
{
	admin_send(fd, status, "text/plain; charset=utf-8", extra, text, strlen(text),
	           head_only);
}

/* The answer to GET /healthz: 200 while the router takes requests and
 * has a tunnel; 503 while it drains or has no tunnel, so that a load
 * balancer sends its users elsewhere. */
static int
admin_health(struct ptth_router *r, char *text, size_t cap)
{
	int tunnels = ptth_router_tunnel_count(r);

	if (atomic_load(&r->draining)) {
		snprintf(text, cap, "draining\n");
		return 503;
	}
	if (tunnels == 0) {
		snprintf(text, cap, "no tunnel\n");
		return 503;
	}
	snprintf(text, cap, "ok: %d tunnels\n", tunnels);
	return 200;
}

/* Answers GET or HEAD on path. */
static void
admin_answer(struct ptth_router *r, int fd, const char *path, bool head_only)
{
	struct metrics_text t = { 0 };
	char text[64];
	int status;

	if (strcmp(path, "/metrics") == 0 || strcmp(path, "/tunnels") == 0) {
		bool json = path[1] == 't';
		int rc = json ? metrics_render_tunnels(r, &t) : metrics_render(r, &t);
		if (rc < 0) {
			admin_send_text(fd, 500, NULL, "500 out of memory\n", head_only);
		} else {
			admin_send(fd, 200, json ? "application/json" :
			           "text/plain; version=0.0.4; charset=utf-8", NULL, t.buf, t.len,
			           head_only);
		}
		metrics_text_free(&t);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		status = admin_health(r, text, sizeof text);
		admin_send_text(fd, status, NULL, text, head_only);
		return;
	}
	admin_send_text(fd, 404, NULL, "404 Not Found: try /metrics, /tunnels or /healthz\n",
	                head_only);
}

/* Reads one request on fd and answers it. */
static void
admin_serve(struct ptth_router *r, int fd)
{
	char head[ADMIN_HEAD_MAX];
	const char *method, *path;
	int rc = admin_read_head(fd, head, sizeof head);

	if (rc == PTTH_ETOOBIG)
		admin_send_text(fd, 431, NULL, "431 Request Header Fields Too Large\n", false);
	else if (rc == -ETIMEDOUT)
		admin_send_text(fd, 408, NULL, "408 Request Timeout\n", false);
	else if (rc == PTTH_EPROTO || (rc == 0 && !admin_parse_line(head, &method, &path)))
		admin_send_text(fd, 400, NULL, "400 Bad Request: malformed request line\n", false);
	else if (rc == 0 && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		admin_send_text(fd, 405, "Allow: GET, HEAD",
		                "405 Method Not Allowed: only GET and HEAD\n", false);
	else if (rc == 0)
		admin_answer(r, fd, path, strcmp(method, "HEAD") == 0);
}

/* Closing with unread input would reset the connection and could
 * destroy the answer: say we are done, then read what still comes for
 * a short while (bounded in time and bytes). */
static void
admin_linger(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	long long deadline = now_ms() + 500;
	char buf[4096];
	size_t drained = 0;

	shutdown(fd, SHUT_WR);
	while (drained < 64 * 1024 && now_ms() < deadline &&
	       poll(&pfd, 1, (int)(deadline - now_ms())) > 0) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n <= 0)
			break;
		drained += (size_t)n;
	}
}

/* Lists fd as the connection being answered, unless stopping.
 * Returns false when the admin port is stopping: close it unanswered. */
static bool
admin_set_client(struct admin *a, int fd)
{
	bool ok;

	mutex_lock(&a->mu);
	ok = !a->stopping || fd < 0;
	a->client_fd = ok ? fd : -1;
	mutex_unlock(&a->mu);
	return ok;
}

static void *
admin_thread_main(void *arg)
{
	struct ptth_router *r = arg;
	struct admin *a = &r->admin;

	pthread_setname_np(pthread_self(), "ptth-admin");
	for (;;) {
		int fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				usleep(10000); /* out of fds: let connections end */
				continue;
			}
			return NULL; /* EINVAL: shut down by admin_stop() */
		}
		if (admin_set_client(a, fd)) {
			net_set_send_timeout(fd, ADMIN_TIMEOUT_MS);
			admin_serve(r, fd);
			admin_linger(fd);
			admin_set_client(a, -1);
		}
		close(fd);
	}
}

/* Binds addr and starts the admin thread. Returns 0 or a negative code;
 * on failure nothing is left open. */
int
admin_start(struct ptth_router *r, const char *addr)
{
	struct admin *a = &r->admin;
	int rc;

	a->fd = net_listen(addr, &a->port);
	if (a->fd < 0) {
		rc = a->fd;
		a->fd = -1;
		return rc;
	}
	mutex_lock(&a->mu);
	a->stopping = false;
	mutex_unlock(&a->mu);
	rc = -pthread_create(&a->thread, NULL, admin_thread_main, r);
	if (rc < 0) {
		close(a->fd);
		a->fd = -1;
		return rc;
	}
	a->started = true;
	return 0;
}

/* Stops answering: shuts the listener and the connection being
 * answered, joins the thread. Safe when never started, and twice. */
void
admin_stop(struct ptth_router *r)
{
	struct admin *a = &r->admin;

	if (!a->started)
		return;
	mutex_lock(&a->mu);
	a->stopping = true;
	if (a->client_fd >= 0)
		shutdown(a->client_fd, SHUT_RDWR); /* under a->mu: fd is not closed yet */
	mutex_unlock(&a->mu);
	shutdown(a->fd, SHUT_RDWR); /* accept() then fails with EINVAL */
	pthread_join(a->thread, NULL);
	close(a->fd);
	a->fd = -1;
	a->started = false;
}
