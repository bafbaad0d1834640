/* tokens.h -- the router's tunnel tokens file. See tokens.c. */
#ifndef PTTH_TOKENS_H
#define PTTH_TOKENS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* What a token may do, as tokens_check() says. */
enum tokens_verdict {
	TOKENS_ALLOWED = 0,   /* a known token allowed to serve the service */
	TOKENS_UNKNOWN = 1,   /* no such token: 401 */
	TOKENS_FORBIDDEN = 2, /* a known token, not for this service: 403 */
};

struct tokens;

int tokens_parse(const char *text, size_t len, struct tokens **out, char *err,
                 size_t err_len);
int tokens_load(const char *path, struct tokens **out, char *err, size_t err_len);
void tokens_ref(struct tokens *t);
void tokens_unref(struct tokens *t);
enum tokens_verdict tokens_check(const struct tokens *t, const char *token,
                                 const char *service);
size_t tokens_count(const struct tokens *t);
size_t tokens_service_count(const struct tokens *t);
const char *tokens_service_at(const struct tokens *t, size_t i);

#endif
