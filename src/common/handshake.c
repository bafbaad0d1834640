/*
 * handshake.c -- the PTTH handshake's pieces that both sides need: read
 * one HTTP/1.1 head from a socket without taking a byte past it, split
 * it strictly, and check a service name and an ALPN field.
 *
 * Owns:    nothing beyond the field list a parse fills (freed by
 *          handshake_head_free()).
 * Threads: the router's tunnel thread before its session exists
 *          (tunnel_handshake.c) and the backend's slot thread right after
 *          it dialled (backend_handshake.c). Nothing here is shared.
 * Locks:   none.
 * Interface:
 *   - handshake_read_head(): reads up to the blank line that ends a head,
 *     bounded in bytes and time, and leaves every later byte (the first
 *     HTTP/2 frames) in the socket for the session to read;
 *   - handshake_head_parse(): start line and fields, refusing what RFC
 *     9112 forbids or merely tolerates (bare LF, folding, space before
 *     the colon, control characters);
 *   - handshake_service_valid(): the DNS-style service names ptth uses;
 *     handshake_token_valid(): RFC 6750's bearer token syntax;
 *   - handshake_alpn_find_h2(): RFC 7639 section 2's ALPN list, with its
 *     percent-encoding undone, searched for "h2".
 * Why not http-parser: src/router/http1.c is the one module that calls it, and
 *   it is built for user requests with bodies; a handshake is a head and
 *   nothing else, read on either side, and a strict reader of a few dozen
 *   lines refuses what http-parser tolerates (folding, space before the
 *   colon), which src/router/http1.c has to catch by hand.
 * Tutorial: "A backend introduces itself".
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "ptth.h"
#include "handshake.h"
#include "lock.h"

/* True for the characters of an RFC 9110 token (tchar). */
static bool
handshake_is_tchar(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

/* A service name: one to 253 bytes of lower-case letters, digits,
 * hyphens and dots, in labels of 1 to 63 bytes that neither start nor
 * end with a hyphen (the shape of a DNS name, so that it can be a Host). */
bool
handshake_service_valid(const char *name, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > HANDSHAKE_SERVICE_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (ch == '.') {
			if (label == 0 || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
		if (ch == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && name[len - 1] != '-';
}

/* True for an RFC 6750 bearer token (b64token): letters, digits and
 * "-._~+/", then only "=", at most HANDSHAKE_TOKEN_MAX bytes. */
bool
handshake_token_valid(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
	                   (s[i] >= 'A' && s[i] <= 'Z') || (s[i] != '\0' && strchr("-._~+/", s[i]))))
		i++;
	if (i == 0)
		return false;
	while (i < len && s[i] == '=')
		i++;
	return i == len && len <= HANDSHAKE_TOKEN_MAX;
}

/* The value of one hex digit, or -1. */
static int
handshake_hex(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Decodes one protocol id of len bytes (RFC 7639 section 2: a token in
 * which '%XX' stands for a byte) into out (cap bytes, NUL-terminated).
 * Returns the decoded length, or -1 when it is malformed or too long. */
static int
handshake_alpn_decode(const char *id, size_t len, char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int ch = (unsigned char)id[i];
		if (!handshake_is_tchar((unsigned char)ch))
			return -1;
		if (ch == '%') {
			if (i + 2 >= len)
				return -1;
			int hi = handshake_hex(id[i + 1]), lo = handshake_hex(id[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			ch = hi * 16 + lo;
			i += 2;
		}
		if (n + 1 >= cap)
			return -1;
		out[n++] = (char)ch;
	}
	out[n] = '\0';
	return (int)n;
}

/* Searches an ALPN field value (a comma-separated list, RFC 7639) for
 * the id "h2", undoing percent-encoding ("h%32" is "h2" too).
 * Returns 1 when it is offered, 0 when not, -1 when the list is malformed. */
int
handshake_alpn_find_h2(const char *list)
{
	bool found = false, any = false;
	char id[256];

	while (*list != '\0') {
		while (*list == ' ' || *list == '\t' || *list == ',')
			list++;
		const char *end = list;
		while (*end != '\0' && *end != ',')
			end++;
		const char *last = end;
		while (last > list && (last[-1] == ' ' || last[-1] == '\t'))
			last--;
		if (last > list) {
			int n = handshake_alpn_decode(list, (size_t)(last - list), id, sizeof id);
			if (n < 0)
				return -1;
			any = true;
			found = found || strcmp(id, "h2") == 0;
		}
		list = end;
	}
	return any ? found : -1;
}

/* Splits one field line (NUL-terminated, without its CRLF) into name and
 * value and adds it to h->fields. Returns 0, or PTTH_EPROTO with *why. */
static int
handshake_field_parse(char *line, struct handshake_head *h, const char **why)
{
	char *colon = strchr(line, ':');
	char *value, *end;

	if (line[0] == ' ' || line[0] == '\t') {
		*why = "obsolete line folding";
		return PTTH_EPROTO;
	}
	if (colon == NULL || colon == line) {
		*why = "a field line without a name";
		return PTTH_EPROTO;
	}
	for (char *p = line; p < colon; p++) {
		if (!handshake_is_tchar((unsigned char)*p)) {
			*why = "a field name that is not a token";
			return PTTH_EPROTO;
		}
	}
	value = colon + 1;
	while (*value == ' ' || *value == '\t')
		value++;
	end = value + strlen(value);
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	for (char *p = value; p < end; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			*why = "a control character in a field value";
			return PTTH_EPROTO;
		}
	}
	if (header_list_add(&h->fields, line, (size_t)(colon - line), value,
	                    (size_t)(end - value)) < 0) {
		*why = "out of memory";
		return -ENOMEM;
	}
	return 0;
}

/* Splits the start line into three words at its first two spaces; the
 * third may hold more spaces (a status line's reason phrase). */
static int
handshake_start_parse(char *line, struct handshake_head *h, const char **why)
{
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;

	if (sp1 == NULL || sp2 == NULL || sp1 == line || sp2 == sp1 + 1) {
		*why = "a malformed start line";
		return PTTH_EPROTO;
	}
	*sp1 = *sp2 = '\0';
	h->start[0] = line;
	h->start[1] = sp1 + 1;
	h->start[2] = sp2 + 1;
	return 0;
}

/* Parses a complete head of len bytes (the start line, the fields, the
 * empty line) in place: each CRLF becomes NUL. Every line must end in
 * CRLF. On success h->start and h->fields describe it, and the caller
 * frees the fields with handshake_head_free() whatever the result.
 * Returns 0, PTTH_EPROTO (with *why, a static text) or -ENOMEM. */
int
handshake_head_parse(char *buf, size_t len, struct handshake_head *h, const char **why)
{
	char *p = buf, *end = buf + len;
	bool first = true;
	int rc;

	memset(h, 0, sizeof *h);
	header_list_init(&h->fields);
	for (;;) {
		char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL || lf == p || lf[-1] != '\r') {
			*why = "a line not ended by CRLF";
			return PTTH_EPROTO;
		}
		size_t line_len = (size_t)(lf - 1 - p);
		if (memchr(p, '\0', line_len) != NULL || memchr(p, '\r', line_len) != NULL) {
			*why = "a NUL or CR inside a line";
			return PTTH_EPROTO;
		}
		lf[-1] = '\0';
		if (line_len == 0) {              /* the empty line ends the head */
			if (first || lf + 1 != end) {
				*why = first ? "an empty start line" : "bytes after the head";
				return PTTH_EPROTO;
			}
			return 0;
		}
		rc = first ? handshake_start_parse(p, h, why) : handshake_field_parse(p, h, why);
		if (rc < 0)
			return rc;
		first = false;
		p = lf + 1;
		if (p == end) {
			*why = "a head without its empty line";
			return PTTH_EPROTO;
		}
	}
}

void
handshake_head_free(struct handshake_head *h)
{
	header_list_free(&h->fields);
}

/* Where the head in buf[0..len) ends, looking only from from on: the
 * index just past "\r\n\r\n", or past "\n\n" (a bare-LF head, which the
 * parse then refuses), or 0 when neither is there yet. */
static size_t
handshake_head_end(const char *buf, size_t from, size_t len)
{
	for (size_t i = from; i < len; i++) {
		if (buf[i] != '\n' || i == 0)
			continue;
		if (buf[i - 1] == '\n')
			return i + 1;
		if (i >= 3 && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1;
	}
	return 0;
}

/* Waits until fd is readable, stop_fd (when >= 0) is readable, or the
 * deadline passes. Returns 0, -ESHUTDOWN, -ETIMEDOUT or -errno. */
static int
handshake_wait(int fd, int stop_fd, long long deadline_ms)
{
	struct pollfd fds[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = stop_fd, .events = POLLIN },
	};

	for (;;) {
		long long left = deadline_ms - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		int n = poll(fds, stop_fd >= 0 ? 2 : 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n > 0 && stop_fd >= 0 && (fds[1].revents & POLLIN))
			return -ESHUTDOWN;
		if (n > 0)
			return 0;
	}
}

/* Takes exactly len bytes the socket already holds (they were peeked). */
static int
handshake_take(int fd, char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? PTTH_ECLOSED : -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one head from fd into buf (cap bytes) and stores its length in
 * *len. Bytes are peeked first and only those up to the end of the head
 * are taken, so whatever the peer sent after it stays in the socket.
 * Stops early when stop_fd becomes readable. Returns 0, PTTH_ETOOBIG
 * (no end within cap bytes), -ETIMEDOUT, PTTH_ECLOSED (EOF first),
 * -ESHUTDOWN (stop_fd) or -errno. */
int
handshake_read_head(int fd, char *buf, size_t cap, long long deadline_ms, int stop_fd,
                    size_t *len)
{
	size_t have = 0;

	for (;;) {
		int rc = handshake_wait(fd, stop_fd, deadline_ms);
		if (rc < 0)
			return rc;
		ssize_t n = recv(fd, buf + have, cap - have, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n <= 0)
			return n == 0 ? PTTH_ECLOSED : -errno;
		size_t end = handshake_head_end(buf, have > 3 ? have - 3 : 0, have + (size_t)n);
		size_t take = end ? end - have : (size_t)n;
		rc = handshake_take(fd, buf + have, take);
		if (rc < 0)
			return rc;
		have += take;
		*len = have;
		if (end)
			return 0;
		if (have == cap)
			return PTTH_ETOOBIG;
	}
}
