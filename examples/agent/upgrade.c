/*
 * upgrade.c -- bin/agent's WebSockets: an extended CONNECT from the
 * router (RFC 8441) becomes an HTTP/1.1 Upgrade to the local server
 * (RFC 6455 section 4.1), then bytes are relayed both ways, untouched.
 *
 * Owns:    the connection to the local server (one per WebSocket, never
 *          pooled) and the relay thread, both ended by upgrade_serve().
 * Threads: upgrade_serve() runs on the handler's "ptth-handler" thread,
 *          which then carries the user's bytes to the local server; one
 *          "ptth-ws-relay" thread carries the local server's bytes back.
 *          The handler thread touches only the request, the relay thread
 *          only the response, until pthread_join().
 * Locks:   none.
 * Interface:
 *   - upgrade_serve() from forward_serve() when ptth_request_protocol()
 *     is "websocket";
 *   - 101 from the local server (with the right Sec-WebSocket-Accept)
 *     becomes 200 and the relay; any other status is passed on with a
 *     one-line body; no answer within the timeout is a 504, no
 *     connection a 502;
 *   - either side's end of stream is passed on as a half-close; a reset
 *     or an error closes both.
 * Tutorial: "Putting an existing app behind the router".
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "forward.h"

#define UPGRADE_MAX_HEAD (64 * 1024)
#define UPGRADE_BUF 16384
#define UPGRADE_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  /* RFC 6455 section 1.3 */

/* Connects to "HOST:PORT" ("[V6]:PORT" too) within timeout_ms. Returns
 * a blocking socket or a negative code. */
static int
upgrade_dial(const char *to, int timeout_ms)
{
	char host[256];
	const char *colon = strrchr(to, ':');
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -ECONNREFUSED;

	snprintf(host, sizeof host, "%.*s", (int)(colon - to), to);
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		return -EHOSTUNREACH;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		/* SO_SNDTIMEO bounds connect() as well (socket(7)). */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			struct timeval none = { 0, 0 };
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
			break;
		}
		int err = errno == EINPROGRESS ? ETIMEDOUT : errno;
		close(fd);
		fd = -err;
	}
	freeaddrinfo(res);
	return fd;
}

/* Sends all of data. Returns 0 or -1. */
static int
send_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Makes a Sec-WebSocket-Key (16 random bytes in base64) in key[25] and
 * the Sec-WebSocket-Accept the server must answer with in accept[29]. */
static void
upgrade_key(char key[25], char accept[29])
{
	unsigned char nonce[16], digest[SHA_DIGEST_LENGTH];
	char both[24 + sizeof UPGRADE_GUID];

	if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce)
		for (size_t i = 0; i < sizeof nonce; i++)
			nonce[i] = (unsigned char)rand();
	EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
	snprintf(both, sizeof both, "%s%s", key, UPGRADE_GUID);
	SHA1((const unsigned char *)both, strlen(both), digest);
	EVP_EncodeBlock((unsigned char *)accept, digest, sizeof digest);
}

/* Writes the HTTP/1.1 Upgrade request into *out (caller frees): the
 * user's target and end-to-end fields, our own key. Returns its length,
 * or -1 when out of memory or a field is not well formed. */
static int
upgrade_request(struct ptth_request *req, const char *host, const char *key, char **out)
{
	const char *path = ptth_request_path(req), *query = ptth_request_query(req);
	const char *name, *value;
	size_t len = 0;
	FILE *f = open_memstream(out, &len);
	bool ok = f != NULL && strpbrk(path, " \r\n") == NULL && strpbrk(query, " \r\n") == NULL;

	if (ok)
		fprintf(f, "GET %s%s%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
		        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n", path,
		        query[0] ? "?" : "", query, host, key);
	for (size_t i = 0; ok && ptth_request_header_at(req, i, &name, &value) == 0; i++) {
		if (!forward_field_ok(name, value))
			ok = false;
		else if (!forward_is_hop_by_hop(name, NULL) &&
		         strcasecmp(name, "sec-websocket-key") != 0)
			fprintf(f, "%s: %s\r\n", name, value);
	}
	if (f != NULL) {
		fputs("\r\n", f);
		fclose(f);
	}
	if (!ok) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return (int)len;
}

/* Reads the local server's answer head into buf (NUL-terminated),
 * waiting at most timeout_ms for each piece. Returns the bytes read
 * (the head and any bytes after it), *head_len set to the head's
 * length; 0 when the server closed first; -ETIMEDOUT; -E2BIG. */
static ssize_t
upgrade_read_head(int fd, char *buf, size_t cap, int timeout_ms, size_t *head_len)
{
	size_t len = 0;
	char *end;

	buf[0] = '\0';
	while ((end = strstr(buf, "\r\n\r\n")) == NULL) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;
		if (len + 1 >= cap)
			return -E2BIG;
		if (poll(&pfd, 1, timeout_ms) == 0)
			return -ETIMEDOUT;
		n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			return 0;
		len += (size_t)n;
		buf[len] = '\0';
	}
	*head_len = (size_t)(end - buf) + 4;
	return (ssize_t)len;
}

/* The value of field name in a raw HTTP/1.1 head, copied into out
 * (blanks trimmed); "" when absent. */
static void
head_field(const char *head, const char *name, char *out, size_t size)
{
	size_t len = strlen(name);

	out[0] = '\0';
	for (const char *line = strstr(head, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
		const char *v = line + 2;
		if (strncasecmp(v, name, len) != 0 || v[len] != ':')
			continue;
		v += len + 1 + strspn(v + len + 1, " \t");
		snprintf(out, size, "%.*s", (int)strcspn(v, "\r"), v);
		while (out[0] != '\0' && strchr(" \t", out[strlen(out) - 1]) != NULL)
			out[strlen(out) - 1] = '\0';
		return;
	}
}

/* Passes the 101's end-to-end fields on (not the handshake's own
 * Upgrade, Connection and Sec-WebSocket-Accept). head is the head
 * without its blank line; it is cut up in place. */
static void
upgrade_pass_fields(struct ptth_response *res, char *head)
{
	char *line, *save;

	strtok_r(head, "\r\n", &save); /* the status line */
	while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
		char *colon = strchr(line, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		char *value = colon + 1 + strspn(colon + 1, " \t");
		value[strcspn(value, "\r")] = '\0';
		while (*value != '\0' && strchr(" \t", value[strlen(value) - 1]) != NULL)
			value[strlen(value) - 1] = '\0';
		if (forward_field_ok(line, value) && !forward_is_hop_by_hop(line, NULL) &&
		    strcasecmp(line, "sec-websocket-accept") != 0 &&
		    strcasecmp(line, "content-length") != 0)
			ptth_response_add_header(res, line, value);
	}
}

struct relay {
	int fd;
	struct ptth_response *res;
};

/* The relay thread: the local server's bytes to the user, until the
 * server ends its side (then the response ends: the router half-closes
 * towards the user) or the stream fails (then the server's connection
 * is shut both ways, which also wakes the handler thread's send). */
static void *
relay_thread_main(void *arg)
{
	struct relay *r = arg;
	char buf[UPGRADE_BUF];
	ssize_t n;

	pthread_setname_np(pthread_self(), "ptth-ws-relay");
	while ((n = recv(r->fd, buf, sizeof buf, 0)) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && ptth_response_write(r->res, buf, (size_t)n) < 0)
			break;
	if (n == 0)
		ptth_response_end(r->res);
	else
		shutdown(r->fd, SHUT_RDWR);
	return NULL;
}

/* The handler's side of the relay: the user's bytes to the local server.
 * The user's end of stream becomes a half-close; a reset closes both. */
static void
relay_requests(struct ptth_request *req, int fd)
{
	char buf[UPGRADE_BUF];
	ssize_t n;

	while ((n = ptth_request_read(req, buf, sizeof buf)) > 0)
		if (send_all(fd, buf, (size_t)n) < 0)
			break;
	shutdown(fd, n == 0 ? SHUT_WR : SHUT_RDWR);
}

/* Answers the user with status and a one-line text, and logs it. */
static void
upgrade_answer(struct ptth_request *req, struct ptth_response *res, int status,
               const char *text)
{
	char body[512];
	int len = snprintf(body, sizeof body, "%d %s: %s\n", status,
	                   status == 504 ? "Gateway Timeout" : status == 502 ? "Bad Gateway" :
	                   status == 400 ? "Bad Request" : "WebSocket refused", text);

	if (len >= (int)sizeof body)
		len = (int)sizeof body - 1;
	forward_log("WebSocket %s: %.*s", ptth_request_path(req), len - 1, body);
	ptth_response_send(res, status, "text/plain; charset=utf-8", body, (size_t)len);
}

/* Sends the Upgrade on fd and reads the answer head into head. Returns
 * the local server's status (0: no valid answer, -1: none in time), and
 * the head's length and the bytes read in *head_len and *n. */
static int
upgrade_exchange(struct ptth_request *req, int fd, const char *host, const char *accept,
                 const char *key, char *head, size_t *head_len, ssize_t *n, int timeout_ms)
{
	char *request = NULL, got[64];
	int len = upgrade_request(req, host, key, &request), status = 0;

	*n = len < 0 || send_all(fd, request, (size_t)len) < 0 ? 0 :
	     upgrade_read_head(fd, head, UPGRADE_MAX_HEAD, timeout_ms, head_len);
	free(request);
	if (*n == -ETIMEDOUT)
		return -1;
	if (*n <= 0 || strncmp(head, "HTTP/1.1 ", 9) != 0 || sscanf(head + 9, "%3d", &status) != 1)
		return 0;
	head_field(head, "sec-websocket-accept", got, sizeof got);
	if (status == 101 && strcmp(got, accept) != 0)
		return 0; /* not a WebSocket server's answer to our key */
	return status;
}

/* Opens the connection, sends the Upgrade and checks the answer.
 * Returns the socket once a valid 101 came (its fields passed on, any
 * bytes after its head sent to the user), or -1 after answering. */
static int
upgrade_open(struct ptth_request *req, struct ptth_response *res, const char *to,
             int timeout_ms)
{
	const char *host = ptth_request_authority(req)[0] ? ptth_request_authority(req) : to;
	char key[25], accept[29], text[256], *head = malloc(UPGRADE_MAX_HEAD);
	size_t head_len = 0;
	ssize_t n = 0;
	int fd, status = 0;

	upgrade_key(key, accept);
	fd = head ? upgrade_dial(to, timeout_ms) : -ENOMEM;
	if (fd >= 0)
		status = upgrade_exchange(req, fd, host, accept, key, head, &head_len, &n,
		                          timeout_ms);
	if (status == 101) {
		head[head_len - 2] = '\0'; /* the fields only */
		upgrade_pass_fields(res, head);
		ptth_response_set_status(res, 200);
		if (ptth_response_write(res, head + head_len, (size_t)n - head_len) < 0)
			status = -2;
	} else if (fd < 0) {
		snprintf(text, sizeof text, "local server %s cannot be reached: %s", to,
		         strerror(-fd));
		upgrade_answer(req, res, 502, text);
	} else if (status == -1) {
		snprintf(text, sizeof text, "local server %s sent nothing for %d ms", to,
		         timeout_ms);
		upgrade_answer(req, res, 504, text);
	} else {
		snprintf(text, sizeof text, "local server %s answered the upgrade with %d", to,
		         status);
		upgrade_answer(req, res, status >= 200 ? status : 502, text);
	}
	free(head);
	if (status != 101 && fd >= 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

void
upgrade_serve(struct ptth_request *req, struct ptth_response *res, const char *to,
              int timeout_ms)
{
	struct relay r = { .res = res };
	pthread_t relay;

	r.fd = upgrade_open(req, res, to, timeout_ms);
	if (r.fd < 0)
		return;
	if (pthread_create(&relay, NULL, relay_thread_main, &r) != 0) {
		close(r.fd);
		ptth_response_reset(res);
		return;
	}
	relay_requests(req, r.fd);
	pthread_join(relay, NULL);
	close(r.fd);
}
