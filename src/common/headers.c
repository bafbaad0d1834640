/*
 * headers.c -- header lists, and the mapping between an HTTP/1.1 request
 * or response head and its HTTP/2 form (RFC 9113 section 8.2).
 *
 * Owns:    the strings in each header_list; lists are owned by whoever
 *          declared them (an exchange, a parser glue object, a test).
 * Threads: any; a list is used by one thread at a time or under the lock
 *          of the struct that holds it.
 * Locks:   none.
 * Interface:
 *   - header_list_add()/get() keep copies of fields in arrival order, in
 *     a few chained blocks; header_list_clear() empties a list and keeps
 *     its storage for the next head;
 *   - headers_request_to_h2() builds the HTTP/2 request: pseudo-fields
 *     first, names lower-cased, hop-by-hop fields dropped;
 *   - headers_to_nv() points an nghttp2_nv array at a list's strings;
 *   - headers_response_to_http1() writes the HTTP/1.1 status line and
 *     fields of a response that came back over HTTP/2.
 * Tutorial: "Headers change shape at the border".
 */
#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "headers.h"

/* A piece of storage for the names and values of one list. A list
 * starts with one small block and chains a larger one when it is full,
 * so a request head of a dozen fields costs two allocations (the items
 * and one block), not one per field. */
struct header_block {
	struct header_block *next;  /* the older, smaller blocks */
	size_t size, used;
	char data[];
};

/* The first block's size and the first number of items: a short head
 * (a response's status and a few fields, a request from a program) fits;
 * a browser's grows the list once or twice. The first request of a
 * connection pays for that; the next ones reuse the storage (an exchange
 * recycled by its connection, header_list_clear), so these sizes are
 * about memory, and 10 000 connections hold three lists each. */
#define HEADER_BLOCK_MIN 256
#define HEADER_ITEMS_MIN 8
/* header_list_clear() keeps at most this much storage: one large head
 * does not pin a large block for the life of a connection. */
#define HEADER_KEEP_BYTES 4096
#define HEADER_KEEP_ITEMS 64

void
header_list_init(struct header_list *l)
{
	memset(l, 0, sizeof *l);
}

/* Frees every block in the chain. */
static void
header_blocks_free(struct header_block *b)
{
	while (b != NULL) {
		struct header_block *next = b->next;
		free(b);
		b = next;
	}
}

void
header_list_free(struct header_list *l)
{
	header_blocks_free(l->blocks);
	free(l->items);
	header_list_init(l);
}

/* Empties the list but keeps its storage (the items and the newest,
 * largest block, up to HEADER_KEEP_*) for the next fields: a parser
 * reading one request after another, or an exchange reused by its
 * connection, allocates nothing once the first head has been read. */
void
header_list_clear(struct header_list *l)
{
	if (l->blocks != NULL && l->blocks->size > HEADER_KEEP_BYTES) {
		header_blocks_free(l->blocks);
		l->blocks = NULL;
	} else if (l->blocks != NULL) {
		header_blocks_free(l->blocks->next);
		l->blocks->next = NULL;
		l->blocks->used = 0;
	}
	if (l->alloc > HEADER_KEEP_ITEMS) {
		free(l->items);
		l->items = NULL;
		l->alloc = 0;
	}
	l->count = 0;
	l->bytes = 0;
}

/* Returns n bytes of the list's string storage, chaining a new block
 * when the newest one is full. NULL when out of memory. */
static char *
header_list_take(struct header_list *l, size_t n)
{
	struct header_block *b = l->blocks;
	char *mem;

	if (b == NULL || b->size - b->used < n) {
		size_t size = b != NULL ? b->size * 2 : HEADER_BLOCK_MIN;
		while (size < n)
			size *= 2;
		b = malloc(sizeof *b + size);
		if (b == NULL)
			return NULL;
		b->next = l->blocks;
		b->size = size;
		b->used = 0;
		l->blocks = b;
	}
	mem = b->data + b->used;
	b->used += n;
	return mem;
}

/* Appends a copy of one field. Returns 0 or -ENOMEM. */
int
header_list_add(struct header_list *l, const char *name, size_t name_len,
                const char *value, size_t value_len)
{
	struct header *h;
	char *mem;

	if (l->count == l->alloc) {
		size_t alloc = l->alloc ? l->alloc * 2 : HEADER_ITEMS_MIN;
		struct header *items = realloc(l->items, alloc * sizeof *items);
		if (items == NULL)
			return -ENOMEM;
		l->items = items;
		l->alloc = alloc;
	}
	mem = header_list_take(l, name_len + value_len + 2);
	if (mem == NULL)
		return -ENOMEM;
	h = &l->items[l->count++];
	h->name = mem;
	h->value = mem + name_len + 1;
	memcpy(h->name, name, name_len);
	h->name[name_len] = '\0';
	memcpy(h->value, value, value_len);
	h->value[value_len] = '\0';
	h->name_len = name_len;
	h->value_len = value_len;
	l->bytes += name_len + value_len;
	return 0;
}

/* Appends a copy of every field of src to dst. Returns 0 or -ENOMEM. */
int
header_list_copy(struct header_list *dst, const struct header_list *src)
{
	for (size_t i = 0; i < src->count; i++) {
		const struct header *h = &src->items[i];
		int rc = header_list_add(dst, h->name, h->name_len, h->value, h->value_len);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Returns the n strings of parts joined into one newly allocated string,
 * or NULL when out of memory. What asprintf() would do for "%s%s...",
 * without the cost of a format string on every request. */
static char *
headers_concat(const char *const parts[], size_t n)
{
	size_t len[8], total = 1;
	char *s, *p;

	if (n > sizeof len / sizeof len[0])
		return NULL;
	for (size_t i = 0; i < n; i++)
		total += len[i] = strlen(parts[i]);
	s = p = malloc(total);
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		memcpy(p, parts[i], len[i]);
		p += len[i];
	}
	*p = '\0';
	return s;
}

/* Returns every value of the fields called name joined with ", " (the
 * list form RFC 9110 section 5.3 says is equivalent), newly allocated,
 * or NULL when there is none (or memory ran out). */
char *
header_list_join(const struct header_list *l, const char *name)
{
	char *joined = NULL;

	for (size_t i = 0; i < l->count; i++) {
		char *longer;
		if (strcasecmp(l->items[i].name, name) != 0)
			continue;
		if (joined == NULL)
			longer = strdup(l->items[i].value);
		else
			longer = headers_concat((const char *const[]){ joined, ", ", l->items[i].value }, 3);
		free(joined);
		if (longer == NULL)
			return NULL;
		joined = longer;
	}
	return joined;
}

/* Returns the value of the first field called name (any case), or NULL. */
const char *
header_list_get(const struct header_list *l, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < l->count; i++)
		if (l->items[i].name_len == len && strcasecmp(l->items[i].name, name) == 0)
			return l->items[i].value;
	return NULL;
}

/* True when the comma-separated list contains token (any case), as in
 * "Connection: keep-alive, X-Foo". */
bool
headers_token_in_list(const char *list, const char *token)
{
	size_t tlen = strlen(token);

	while (list != NULL && *list != '\0') {
		while (*list == ' ' || *list == '\t' || *list == ',')
			list++;
		const char *end = list;
		while (*end != '\0' && *end != ',')
			end++;
		const char *last = end;
		while (last > list && (last[-1] == ' ' || last[-1] == '\t'))
			last--;
		if ((size_t)(last - list) == tlen && strncasecmp(list, token, tlen) == 0)
			return true;
		list = end;
	}
	return false;
}

/* True for fields that describe one hop and must not be forwarded
 * (RFC 9110 section 7.6.1, RFC 9113 section 8.2.2): the fixed set, and
 * any field named by the Connection field (passed as connection, may be
 * NULL). TE is handled by the caller, which keeps "TE: trailers". */
bool
headers_is_hop_by_hop(const char *name, const char *connection)
{
	static const struct {
		const char *name;
		size_t len;
	} fixed[] = {
		{ "connection", 10 }, { "keep-alive", 10 }, { "proxy-connection", 16 },
		{ "transfer-encoding", 17 }, { "upgrade", 7 }, { "te", 2 }, { "host", 4 },
	};
	size_t len = strlen(name);

	/* Lengths first: most fields match none, and this runs for every
	 * field of every request and response. */
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		if (len == fixed[i].len && strcasecmp(name, fixed[i].name) == 0)
			return true;
	return connection != NULL && headers_token_in_list(connection, name);
}

/* Adds a field with its name lower-cased, as HTTP/2 requires: the copy
 * in the list is lowered where it lies. Returns 0 or -ENOMEM. */
static int
headers_add_lower(struct header_list *out, const struct header *h)
{
	int rc = header_list_add(out, h->name, h->name_len, h->value, h->value_len);

	if (rc < 0)
		return rc;
	char *name = out->items[out->count - 1].name;
	for (size_t i = 0; i < h->name_len; i++)
		name[i] = (char)tolower((unsigned char)name[i]);
	return 0;
}

static int
headers_add_str(struct header_list *out, const char *name, const char *value)
{
	return header_list_add(out, name, strlen(name), value, strlen(value));
}

/* Adds name with the value earlier + ", " + ours, or ours alone when
 * the user sent no such field (RFC 9110 list syntax). */
static int
headers_add_appended(struct header_list *out, const char *name, const char *earlier,
                     const char *ours)
{
	char *joined;
	int rc;

	if (earlier == NULL)
		return headers_add_str(out, name, ours);
	joined = headers_concat((const char *const[]){ earlier, ", ", ours }, 3);
	if (joined == NULL)
		return -ENOMEM;
	rc = headers_add_str(out, name, joined);
	free(joined);
	return rc;
}

/* Adds the fields that tell the backend who really asked (the user's
 * own, possibly repeated, are in in and are extended): X-Forwarded-For, X-Forwarded-Proto,
 * X-Forwarded-Host and the standard Forwarded (RFC 7239), where an IPv6
 * address is bracketed and quoted. Returns 0 or -ENOMEM. */
static int
headers_add_forwarded(struct header_list *out, const struct header_list *in,
                      const char *client_ip, const char *host)
{
	bool v6 = strchr(client_ip, ':') != NULL;
	/* A host with quotes or backslashes would need escaping: leave it out. */
	bool with_host = host != NULL && strpbrk(host, "\"\\") == NULL;
	char *xff = header_list_join(in, "x-forwarded-for");
	char *forwarded = header_list_join(in, "forwarded");
	char *fwd = headers_concat((const char *const[]){
		"for=", v6 ? "\"[" : "", client_ip, v6 ? "]\"" : "",
		with_host ? ";host=\"" : "", with_host ? host : "", with_host ? "\"" : "",
		";proto=http" }, 8);
	int rc = -ENOMEM;

	if (fwd != NULL)
		rc = headers_add_appended(out, "x-forwarded-for", xff, client_ip);
	if (rc == 0)
		rc = headers_add_str(out, "x-forwarded-proto", "http");
	if (rc == 0 && host != NULL)
		rc = headers_add_str(out, "x-forwarded-host", host);
	if (rc == 0)
		rc = headers_add_appended(out, "forwarded", forwarded, fwd);
	free(fwd);
	free(xff);
	free(forwarded);
	return rc;
}

/* True for the fields the router itself sets when forwarding is on. */
static bool
headers_is_forwarding(const char *name)
{
	return strcasecmp(name, "x-forwarded-for") == 0 ||
	       strcasecmp(name, "x-forwarded-proto") == 0 ||
	       strcasecmp(name, "x-forwarded-host") == 0 ||
	       strcasecmp(name, "forwarded") == 0;
}

/* Builds the HTTP/2 form of a user's request in out (which must be
 * empty): :method, :scheme, :authority (from an absolute-form target,
 * else Host), :path, then every end-to-end field with its name lowered
 * (RFC 9113 section 8.2.2 drops the connection-specific ones). With
 * client_ip set, the forwarding fields are added too.
 * Returns 0 or -ENOMEM. */
int
headers_request_to_h2(const struct http1_head *head, const char *client_ip,
                      struct header_list *out)
{
	const char *authority = head->url_host;
	/* Every Connection field counts, not only the first. */
	char *connection = header_list_join(&head->fields, "connection");
	int rc;

	if (authority == NULL)
		authority = header_list_get(&head->fields, "host");
	rc = headers_add_str(out, ":method", head->method);
	if (rc == 0)
		rc = headers_add_str(out, ":scheme", "http");
	if (rc == 0 && authority != NULL)
		rc = headers_add_str(out, ":authority", authority);
	if (rc == 0)
		rc = headers_add_str(out, ":path", head->path_and_query);
	for (size_t i = 0; rc == 0 && i < head->fields.count; i++) {
		const struct header *h = &head->fields.items[i];
		if (strcasecmp(h->name, "te") == 0) {
			/* The one value of TE allowed over HTTP/2 (RFC 9113 8.2.2). */
			if (headers_token_in_list(h->value, "trailers"))
				rc = headers_add_str(out, "te", "trailers");
			continue;
		}
		if (strcasecmp(h->name, "expect") == 0)
			continue; /* answered by the router itself */
		if (headers_is_hop_by_hop(h->name, connection))
			continue;
		if (client_ip != NULL && headers_is_forwarding(h->name))
			continue; /* rewritten below */
		rc = headers_add_lower(out, h);
	}
	if (rc == 0 && client_ip != NULL)
		rc = headers_add_forwarded(out, &head->fields, client_ip, authority);
	free(connection);
	return rc;
}

/* Returns a newly allocated nghttp2_nv array pointing into l's strings;
 * it stays valid while l is unchanged. Free it with free(). NULL on ENOMEM. */
nghttp2_nv *
headers_to_nv(const struct header_list *l)
{
	nghttp2_nv *nv = calloc(l->count ? l->count : 1, sizeof *nv);

	if (nv == NULL)
		return NULL;
	for (size_t i = 0; i < l->count; i++) {
		nv[i].name = (uint8_t *)l->items[i].name;
		nv[i].value = (uint8_t *)l->items[i].value;
		nv[i].namelen = l->items[i].name_len;
		nv[i].valuelen = l->items[i].value_len;
		nv[i].flags = NGHTTP2_NV_FLAG_NONE;
	}
	return nv;
}

/* The reason phrase HTTP/1.1 prints after a status code. */
const char *
headers_reason_phrase(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	}
	return "Unknown";
}

/* Writes name in the usual HTTP/1.1 spelling ("content-type" becomes
 * "Content-Type"); HTTP/2 delivers every name in lower case. */
static void
headers_canonical_name(char *dst, const char *name, size_t len)
{
	bool upper = true;

	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		dst[i] = upper ? (char)toupper((unsigned char)c) : c;
		upper = (c == '-');
	}
}

/* Writes "HTTP/1.1 NNN Reason\r\n" at p (status is 100 to 999, as the
 * caller checked) and returns the end: a format string would cost more
 * than the rest of the head. p needs 64 bytes. */
static char *
headers_status_line(char *p, int status)
{
	const char *reason = headers_reason_phrase(status);
	size_t rlen = strlen(reason);

	memcpy(p, "HTTP/1.1 ", 9);
	p[9] = (char)('0' + status / 100 % 10);
	p[10] = (char)('0' + status / 10 % 10);
	p[11] = (char)('0' + status % 10);
	p[12] = ' ';
	memcpy(p + 13, reason, rlen);
	p += 13 + rlen;
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

/* Formats the HTTP/1.1 head of a response that arrived over HTTP/2:
 * status line, end-to-end fields, then framing (a line such as
 * "Transfer-Encoding: chunked", or NULL), then the blank line. Fields
 * that name the framing of the HTTP/2 side are dropped by the caller's
 * choice of framing. *out is malloc'd; the caller frees it.
 * Returns 0 or -ENOMEM. */
int
headers_response_to_http1(int status, const struct header_list *h2,
                          const char *framing, char **out, size_t *out_len)
{
	size_t need = 64 + (framing ? strlen(framing) : 0);
	char *buf, *p;

	for (size_t i = 0; i < h2->count; i++)
		need += h2->items[i].name_len + h2->items[i].value_len + 4;
	buf = malloc(need);
	if (buf == NULL)
		return -ENOMEM;
	p = headers_status_line(buf, status);
	for (size_t i = 0; i < h2->count; i++) {
		const struct header *h = &h2->items[i];
		if (h->name[0] == ':' || headers_is_hop_by_hop(h->name, NULL))
			continue;
		headers_canonical_name(p, h->name, h->name_len);
		p += h->name_len;
		*p++ = ':';
		*p++ = ' ';
		memcpy(p, h->value, h->value_len);
		p += h->value_len;
		*p++ = '\r';
		*p++ = '\n';
	}
	if (framing != NULL) {
		size_t flen = strlen(framing);
		memcpy(p, framing, flen);
		p += flen;
		*p++ = '\r';
		*p++ = '\n';
	}
	*p++ = '\r';
	*p++ = '\n';
	*out = buf;
	*out_len = (size_t)(p - buf);
	return 0;
}
