/* handshake.h -- the PTTH handshake's pieces shared by the router and the
 * backend. See handshake.c. */
#ifndef PTTH_HANDSHAKE_H
#define PTTH_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "headers.h"

#define HANDSHAKE_SERVICE_MAX 253  /* bytes in a service name, as a DNS name */
#define HANDSHAKE_TOKEN_MAX 512    /* bytes in a bearer token */
#define HANDSHAKE_PATH_PREFIX "/ptth"

/* An HTTP/1.1 head split by handshake_head_parse(): the three words of
 * the start line (request or status line) and the fields. The strings
 * point into the caller's buffer, which the parse rewrites in place. */
struct handshake_head {
	const char *start[3];
	struct header_list fields;
};

bool handshake_service_valid(const char *name, size_t len);
bool handshake_token_valid(const char *s, size_t len);
int handshake_alpn_find_h2(const char *list);
int handshake_head_parse(char *buf, size_t len, struct handshake_head *h,
                         const char **why);
void handshake_head_free(struct handshake_head *h);
int handshake_read_head(int fd, char *buf, size_t cap, long long deadline_ms,
                        int stop_fd, size_t *len);

#endif
