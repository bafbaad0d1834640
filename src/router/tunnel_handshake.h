/* tunnel_handshake.h -- the router's side of the PTTH handshake. See
 * tunnel_handshake.c. */
#ifndef PTTH_TUNNEL_HANDSHAKE_H
#define PTTH_TUNNEL_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "handshake.h"

struct tokens;

#define TUNNEL_HANDSHAKE_MAX_BYTES 8192  /* a handshake head larger than this: 431 */

/* What a dialler said, and what the router answers it. */
struct tunnel_hello {
	bool handshake;                   /* false: a raw tunnel */
	char service[HANDSHAKE_SERVICE_MAX + 1]; /* "": the default pool */
	bool has_token;
	char token[HANDSHAKE_TOKEN_MAX + 1];
	int status;                       /* 0 while acceptable, else the refusal */
	const char *why;                  /* the refusal's text, for body and log */
	char why_buf[HANDSHAKE_SERVICE_MAX + 64]; /* where why points when it names a service */
};

/* How long to wait and where to stop. */
struct tunnel_handshake_conf {
	int raw_wait_ms;      /* silence this long means a raw dialler */
	int timeout_ms;       /* the whole handshake must arrive within this */
	int stop_fd;          /* readable once the router stops; -1: none */
};

int tunnel_handshake_read(int fd, const struct tunnel_handshake_conf *conf,
                          struct tunnel_hello *hello);
int tunnel_handshake_check(char *buf, size_t len, struct tunnel_hello *hello);
int tunnel_handshake_authorize(struct tunnel_hello *hello, const struct tokens *tokens);
int tunnel_handshake_format(const struct tunnel_hello *hello, char *buf, size_t cap);
int tunnel_handshake_answer(int fd, const struct tunnel_hello *hello);

#endif
