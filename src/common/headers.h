/* headers.h -- header lists and the HTTP/1.1 <-> HTTP/2 mapping. See headers.c. */
#ifndef PTTH_HEADERS_H
#define PTTH_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <nghttp2/nghttp2.h>

struct header {
	char *name;   /* NUL-terminated, in one of the list's blocks */
	char *value;  /* NUL-terminated, right after name */
	size_t name_len, value_len;
};

struct header_block;  /* storage for a list's strings (headers.c) */

struct header_list {
	struct header *items;
	size_t count, alloc;
	size_t bytes;   /* sum of name and value lengths, for limits */
	struct header_block *blocks; /* the strings, newest block first; a
	                                block is never moved, so names and
	                                values stay where they are */
};

/* What a user's HTTP/1.1 request head says, as the parser glue found it. */
struct http1_head {
	const char *method;
	const char *path_and_query;  /* origin form: "/foo?x=1" */
	const char *url_host;        /* host of an absolute-form target, or NULL */
	int version_minor;           /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
	struct header_list fields;
};

void header_list_init(struct header_list *l);
void header_list_free(struct header_list *l);
void header_list_clear(struct header_list *l);
int header_list_add(struct header_list *l, const char *name, size_t name_len,
                    const char *value, size_t value_len);
const char *header_list_get(const struct header_list *l, const char *name);
int header_list_copy(struct header_list *dst, const struct header_list *src);
char *header_list_join(const struct header_list *l, const char *name);
bool headers_token_in_list(const char *list, const char *token);
bool headers_is_hop_by_hop(const char *name, const char *connection);
int headers_request_to_h2(const struct http1_head *head, const char *client_ip,
                          struct header_list *out);
nghttp2_nv *headers_to_nv(const struct header_list *l);
const char *headers_reason_phrase(int status);
int headers_response_to_http1(int status, const struct header_list *h2,
                              const char *framing, char **out, size_t *out_len);

#endif
