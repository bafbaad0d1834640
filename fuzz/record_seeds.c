/*
 * record_seeds.c -- records the seed corpora of fuzz_tunnel and
 * fuzz_backend from real exchanges between a router and a backend.
 *
 * Owns:    one router, and per recording one backend, one relay thread
 *          and the files it writes.
 * Threads: main runs the recordings one after the other; the relay
 *          thread ("seed-relay") copies bytes between the backend and the
 *          router's tunnel port and writes each direction to a file.
 * Locks:   none: main starts the relay thread, then only joins it.
 * Interface: record_seeds DIR (make fuzz-seeds runs it with fuzz/corpus).
 *   For every request file DIR/fuzz_user/NAME (the hand-written user
 *   seeds), a fresh backend dials the router through the relay, NAME's
 *   bytes go to the router's HTTP port, the answer is read, the backend
 *   stops (GOAWAY), and the relay has written
 *     DIR/fuzz_backend/rec-NAME  what the router sent (client magic,
 *                                SETTINGS, HEADERS, DATA, ...): input
 *                                for a backend;
 *     DIR/fuzz_tunnel/rec-NAME   what the backend sent (server preface
 *                                SETTINGS, the response frames): input for
 *                                the router's tunnel side, whose harness
 *                                opens stream 1 as here.
 *   Requests the router answers itself (a 400, say) reach no backend
 *   and record nothing. Then the hand-made seeds below are written:
 *   frame sequences no well-behaved peer sends. Everything runs on
 *   127.0.0.1 with ports the kernel picks, and pings off, so the
 *   recordings do not depend on timing. Exits 0, or 1 on any failure.
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ptth.h"

#define WAIT_MS 10000
#define MAX_SEED (64 * 1024)

/* One recording's relay: the listening socket the backend dials, the
 * router's tunnel port, and the two output files. */
struct relay {
	int listen_fd;
	int listen_port;
	int router_port;
	FILE *to_backend;   /* router -> backend bytes */
	FILE *to_router;    /* backend -> router bytes */
	int result;         /* 0, or -1 when copying failed */
};

static void
die(const char *what)
{
	fprintf(stderr, "record_seeds: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int
tcp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("connect");
	return fd;
}

static int
tcp_listen(int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		die("listen");
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Moves what is readable on from to to, and records it in out. Returns
 * the bytes moved, 0 at EOF, -1 on error. */
static ssize_t
relay_copy(int from, int to, FILE *out)
{
	char buf[16384];
	ssize_t n = recv(from, buf, sizeof buf, 0);

	if (n <= 0)
		return n < 0 && errno != ECONNRESET ? -1 : 0;
	if (fwrite(buf, 1, (size_t)n, out) != (size_t)n)
		return -1;
	for (ssize_t off = 0; off < n;) {
		ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);

		if (w < 0)
			return errno == EPIPE || errno == ECONNRESET ? n : -1;
		off += w;
	}
	return n;
}

/* The relay thread: accepts the backend, dials the router, and copies
 * both ways until both directions have ended. */
static void *
relay_thread_main(void *arg)
{
	struct relay *rl = arg;
	int backend = accept(rl->listen_fd, NULL, NULL);
	int router = backend < 0 ? -1 : tcp_connect(rl->router_port);
	bool up_open = true, down_open = true;

	pthread_setname_np(pthread_self(), "seed-relay");
	rl->result = backend < 0 ? -1 : 0;
	while (rl->result == 0 && (up_open || down_open)) {
		struct pollfd p[2] = {
			{ .fd = up_open ? backend : -1, .events = POLLIN },
			{ .fd = down_open ? router : -1, .events = POLLIN },
		};
		ssize_t n;

		if (poll(p, 2, WAIT_MS) <= 0) {
			rl->result = -1;
			break;
		}
		if (p[0].revents) {
			n = relay_copy(backend, router, rl->to_router);
			if (n < 0)
				rl->result = -1;
			if (n == 0) {
				up_open = false;
				shutdown(router, SHUT_WR);
			}
		}
		if (p[1].revents) {
			n = relay_copy(router, backend, rl->to_backend);
			if (n < 0)
				rl->result = -1;
			if (n == 0) {
				down_open = false;
				shutdown(backend, SHUT_WR);
			}
		}
	}
	if (router >= 0)
		close(router);
	if (backend >= 0)
		close(backend);
	return NULL;
}

/* The recorded backend's routes: /foo answers "bar", /echo echoes the
 * body, /bytes?n=N sends N bytes, /trailers adds a trailer, /reset
 * resets the stream, anything else is 404. */
static void
seed_handler(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	const char *path = ptth_request_path(req);
	char buf[16384];
	ssize_t n;

	(void)arg;
	if (strcmp(path, "/foo") == 0) {
		ptth_response_send(res, 200, "text/plain", "bar", 3);
	} else if (strcmp(path, "/echo") == 0) {
		while ((n = ptth_request_read(req, buf, sizeof buf)) > 0)
			if (ptth_response_write(res, buf, (size_t)n) < 0)
				return;
		if (n < 0)
			ptth_response_reset(res);
	} else if (strcmp(path, "/bytes") == 0) {
		long left = strncmp(ptth_request_query(req), "n=", 2) == 0 ?
		            strtol(ptth_request_query(req) + 2, NULL, 10) : 1024;

		memset(buf, 'x', sizeof buf);
		for (; left > 0; left -= (long)sizeof buf)
			if (ptth_response_write(res, buf, left < (long)sizeof buf ?
			                        (size_t)left : sizeof buf) < 0)
				return;
	} else if (strcmp(path, "/trailers") == 0) {
		ptth_response_add_trailer(res, "x-checksum", "42");
		ptth_response_send(res, 200, "text/plain", "body", 4);
	} else if (strcmp(path, "/reset") == 0) {
		ptth_response_reset(res);
	} else {
		ptth_response_send(res, 404, "text/plain", "not found", 9);
	}
}

/* Sends req to the router's HTTP port, half-closes, and reads the answer
 * until the router closes. */
static void
user_request(int http_port, const char *req, size_t len)
{
	int fd = tcp_connect(http_port);
	char buf[16384];

	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		die("send");
	shutdown(fd, SHUT_WR);
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (poll(&p, 1, WAIT_MS) > 0 && recv(fd, buf, sizeof buf, 0) > 0)
		;
	close(fd);
}

static FILE *
open_out(const char *dir, const char *sub, const char *name, char *path, size_t size)
{
	FILE *f;

	snprintf(path, size, "%s/%s/rec-%s", dir, sub, name);
	f = fopen(path, "wb");
	if (f == NULL)
		die(path);
	return f;
}

/* True when a recorded router -> backend stream carries a HEADERS frame
 * after the 24-byte client magic: a request reached the backend. */
static bool
has_request(const char *path)
{
	static unsigned char b[MAX_SEED * 16];
	FILE *f = fopen(path, "rb");
	size_t len = f ? fread(b, 1, sizeof b, f) : 0;

	if (f)
		fclose(f);
	for (size_t pos = 24; pos + 9 <= len; pos += 9 + ((size_t)b[pos] << 16 |
	                                                 (size_t)b[pos + 1] << 8 | b[pos + 2]))
		if (b[pos + 3] == 0x1)
			return true;
	return false;
}

/* Records one exchange for the request in file name. */
static void
record_one(const char *dir, const char *name, int http_port, int tunnel_port,
           struct ptth_router *r)
{
	char req[MAX_SEED], in_path[4096], down_path[4096], up_path[4096], addr[64];
	struct relay rl = { .router_port = tunnel_port };
	struct ptth_backend_options bo;
	struct ptth_backend *b;
	pthread_t relay;
	FILE *f;
	size_t len;

	snprintf(in_path, sizeof in_path, "%s/fuzz_user/%s", dir, name);
	f = fopen(in_path, "rb");
	if (f == NULL)
		die(in_path);
	len = fread(req, 1, sizeof req, f);
	fclose(f);

	rl.listen_fd = tcp_listen(&rl.listen_port);
	rl.to_backend = open_out(dir, "fuzz_backend", name, down_path, sizeof down_path);
	rl.to_router = open_out(dir, "fuzz_tunnel", name, up_path, sizeof up_path);
	if (pthread_create(&relay, NULL, relay_thread_main, &rl) != 0)
		die("pthread_create");
	snprintf(addr, sizeof addr, "127.0.0.1:%d", rl.listen_port);
	ptth_backend_options_init(&bo);
	bo.router_addr = addr;
	bo.handler = seed_handler;
	bo.ping_interval_ms = -1;
	b = ptth_backend_new(&bo);
	if (b == NULL || ptth_backend_start(b) < 0 || ptth_router_wait_tunnels(r, 1, WAIT_MS) < 0)
		die("backend start");
	user_request(http_port, req, len);
	ptth_backend_free(b); /* GOAWAY; the router then closes too */
	pthread_join(relay, NULL);
	close(rl.listen_fd);
	fclose(rl.to_backend);
	fclose(rl.to_router);
	if (rl.result < 0) {
		errno = EIO;
		die(name);
	}
	if (!has_request(down_path)) {
		remove(down_path);
		remove(up_path);
		printf("record_seeds: %s reached no backend; nothing recorded\n", name);
		return;
	}
	printf("record_seeds: %s -> rec-%s\n", name, name);
}

/* Hand-made seeds: what no well-behaved peer sends, as C strings with
 * an explicit length (they contain NULs). */
struct handmade {
	const char *sub, *name;
	const char *bytes;
	size_t len;
};

#define SEED(sub, name, bytes) { sub, name, bytes, sizeof bytes - 1 }
#define MAGIC "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define SETTINGS_EMPTY "\x00\x00\x00\x04\x00\x00\x00\x00\x00"
#define SETTINGS_ACK "\x00\x00\x00\x04\x01\x00\x00\x00\x00"
/* HEADERS on stream 1, END_STREAM|END_HEADERS: GET http://a/ (HPACK
 * static table: :method GET, :scheme http, :path /, :authority "a"). */
#define HEADERS_GET "\x00\x00\x05\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x01" "a"
/* HEADERS on stream 1, END_HEADERS: :status 200. */
#define HEADERS_200 "\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88"

static const struct handmade handmade[] = {
	/* The router's tunnel side: after a valid preface... */
	SEED("fuzz_tunnel", "hand-200-then-data",
	     SETTINGS_EMPTY SETTINGS_ACK HEADERS_200 "\x00\x00\x02\x00\x01\x00\x00\x00\x01ok"),
	SEED("fuzz_tunnel", "hand-goaway",
	     SETTINGS_EMPTY "\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"),
	SEED("fuzz_tunnel", "hand-rst-stream",
	     SETTINGS_EMPTY "\x00\x00\x04\x03\x00\x00\x00\x00\x01\x00\x00\x00\x07"),
	SEED("fuzz_tunnel", "hand-push-promise",
	     SETTINGS_EMPTY "\x00\x00\x05\x05\x04\x00\x00\x00\x01\x00\x00\x00\x02\x82"),
	SEED("fuzz_tunnel", "hand-window-overflow",
	     SETTINGS_EMPTY "\x00\x00\x04\x08\x00\x00\x00\x00\x00\x7f\xff\xff\xff"),
	SEED("fuzz_tunnel", "hand-continuation",
	     SETTINGS_EMPTY "\x00\x00\x01\x01\x00\x00\x00\x00\x01\x88"
	     "\x00\x00\x01\x09\x04\x00\x00\x00\x01\x5f"),
	/* ...and after garbage instead of one. */
	SEED("fuzz_tunnel", "hand-http1-answer", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
	SEED("fuzz_tunnel", "hand-headers-first", HEADERS_200 SETTINGS_EMPTY),
	SEED("fuzz_tunnel", "hand-short-settings", "\x00\x00\x05\x04\x00\x00\x00\x00\x00\x00\x03\x00"),
	/* The backend: after the client magic... */
	SEED("fuzz_backend", "hand-get", MAGIC SETTINGS_EMPTY HEADERS_GET),
	SEED("fuzz_backend", "hand-ping", MAGIC SETTINGS_EMPTY
	     "\x00\x00\x08\x06\x00\x00\x00\x00\x00" "12345678" HEADERS_GET),
	SEED("fuzz_backend", "hand-rst-after-get", MAGIC SETTINGS_EMPTY HEADERS_GET
	     "\x00\x00\x04\x03\x00\x00\x00\x00\x01\x00\x00\x00\x08"),
	SEED("fuzz_backend", "hand-settings-zero-window", MAGIC
	     "\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00" HEADERS_GET),
	SEED("fuzz_backend", "hand-even-stream", MAGIC SETTINGS_EMPTY
	     "\x00\x00\x05\x01\x05\x00\x00\x00\x02\x82\x86\x84\x41\x01" "a"),
	/* ...and without it. */
	SEED("fuzz_backend", "hand-http1-request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	SEED("fuzz_backend", "hand-bad-magic", "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" SETTINGS_EMPTY),
};

static void
write_handmade(const char *dir)
{
	char path[4096];

	for (size_t i = 0; i < sizeof handmade / sizeof handmade[0]; i++) {
		const struct handmade *h = &handmade[i];
		FILE *f;

		snprintf(path, sizeof path, "%s/%s/%s", dir, h->sub, h->name);
		f = fopen(path, "wb");
		if (f == NULL || fwrite(h->bytes, 1, h->len, f) != h->len || fclose(f) != 0)
			die(path);
		printf("record_seeds: wrote %s\n", path);
	}
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
	struct ptth_router_options ro;
	struct ptth_router *r;
	char path[4096], *names[256];
	size_t count = 0;
	struct dirent *e;
	int http_port, tunnel_port;
	DIR *d;

	if (argc != 2) {
		fprintf(stderr, "usage: record_seeds DIR\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	ptth_log_set_verbose(0);
	ptth_router_options_init(&ro);
	ro.http_addr = "127.0.0.1:0";
	ro.tunnel_addr = "127.0.0.1:0";
	ro.ping_interval_ms = -1;
	r = ptth_router_new(&ro);
	if (r == NULL || ptth_router_start(r) < 0 ||
	    ptth_router_ports(r, &http_port, &tunnel_port) < 0)
		die("router start");

	snprintf(path, sizeof path, "%s/fuzz_user", argv[1]);
	d = opendir(path);
	if (d == NULL)
		die(path);
	while ((e = readdir(d)) != NULL && count < sizeof names / sizeof names[0])
		if (e->d_name[0] != '.')
			names[count++] = strdup(e->d_name);
	closedir(d);
	qsort(names, count, sizeof names[0], compare_names);
	for (size_t i = 0; i < count; i++) {
		record_one(argv[1], names[i], http_port, tunnel_port, r);
		free(names[i]);
	}
	write_handmade(argv[1]);
	ptth_router_free(r);
	return 0;
}
