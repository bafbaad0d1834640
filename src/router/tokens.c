/*
 * tokens.c -- the router's tunnel tokens: which bearer token may serve
 * which services, read from the file given to --tunnel-tokens.
 *
 * Owns:    a parsed file (struct tokens): each token, the services it
 *          may serve, and the list of every service named. It is never
 *          changed after parsing and is reference counted, so a reload
 *          (SIGHUP) swaps in a new one while tunnel threads still check
 *          against the old.
 * Threads: the router's caller parses (start, reload); tunnel threads
 *          check during their handshake; user threads never see it.
 * Locks:   none; a struct tokens is immutable and its count is atomic.
 * Interface:
 *   - the file: one "TOKEN SERVICE[,SERVICE...]" per line, "*" for any
 *     service, "#" starts a comment, blank lines are ignored; a token is
 *     RFC 6750's b64token, a service a name handshake_service_valid()
 *     accepts; any other line makes the whole file invalid;
 *   - tokens_load() / tokens_parse(): NULL-free result or an error with
 *     the line number in err;
 *   - tokens_check(): compares the offered token with every token in
 *     constant time for its content, without stopping at a match;
 *   - joining the default pool (no service) needs a "*" token.
 * Tutorial: "A backend introduces itself".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ptth.h"
#include "handshake.h"
#include "tokens.h"

#define TOKENS_FILE_MAX (1024 * 1024)  /* a tokens file larger than this is refused */

struct token_entry {
	char *token;
	size_t len;
	bool any;                 /* "*": every service, the default pool too */
	char **services;
	size_t count;
};

struct tokens {
	atomic_int refs;
	struct token_entry *items;
	size_t count;
	char **names;             /* every service named, once each */
	size_t name_count;
};

void
tokens_ref(struct tokens *t)
{
	atomic_fetch_add(&t->refs, 1);
}

/* Drops a reference; the last one frees everything. NULL is allowed. */
void
tokens_unref(struct tokens *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	for (size_t i = 0; i < t->count; i++) {
		free(t->items[i].token);
		for (size_t j = 0; j < t->items[i].count; j++)
			free(t->items[i].services[j]);
		free(t->items[i].services);
	}
	for (size_t i = 0; i < t->name_count; i++)
		free(t->names[i]);
	free(t->names);
	free(t->items);
	free(t);
}

/* Appends a copy of s[0..len) to *arr (*count items). Returns 0 or -ENOMEM. */
static int
tokens_push(char ***arr, size_t *count, const char *s, size_t len)
{
	char **bigger = realloc(*arr, (*count + 1) * sizeof *bigger);
	char *copy = strndup(s, len);

	if (bigger != NULL)
		*arr = bigger;
	if (bigger == NULL || copy == NULL) {
		free(copy);
		return -ENOMEM;
	}
	(*arr)[(*count)++] = copy;
	return 0;
}

/* Lists a service name once in t->names. Returns 0 or -ENOMEM. */
static int
tokens_name_service(struct tokens *t, const char *s, size_t len)
{
	for (size_t i = 0; i < t->name_count; i++)
		if (strlen(t->names[i]) == len && memcmp(t->names[i], s, len) == 0)
			return 0;
	return tokens_push(&t->names, &t->name_count, s, len);
}

/* Parses the services list of one line ("a,b" or "*") into e.
 * Returns 0, -EINVAL or -ENOMEM. */
static int
tokens_parse_services(struct tokens *t, struct token_entry *e, const char *s, size_t len)
{
	while (len > 0) {
		const char *comma = memchr(s, ',', len);
		size_t n = comma ? (size_t)(comma - s) : len;
		int rc;

		if (n == 1 && s[0] == '*')
			e->any = true;
		else if (!handshake_service_valid(s, n))
			return -EINVAL;
		else if ((rc = tokens_push(&e->services, &e->count, s, n)) < 0 ||
		         (rc = tokens_name_service(t, s, n)) < 0)
			return rc;
		if (comma == NULL)
			return 0;
		s = comma + 1;
		len -= n + 1;
		if (len == 0)
			return -EINVAL;            /* a trailing comma */
	}
	return -EINVAL;
}

/* Finds the next blank-separated word in [*p, end). Returns its length
 * (0 when none) with *word set, and moves *p past it. */
static size_t
tokens_word(const char **p, const char *end, const char **word)
{
	while (*p < end && (**p == ' ' || **p == '\t' || **p == '\r'))
		(*p)++;
	*word = *p;
	while (*p < end && **p != ' ' && **p != '\t' && **p != '\r')
		(*p)++;
	return (size_t)(*p - *word);
}

/* Parses one line (without its LF): nothing, a comment, or a token and
 * its services. Returns 0, -EINVAL (with *why) or -ENOMEM. */
static int
tokens_parse_line(struct tokens *t, const char *line, size_t len, const char **why)
{
	const char *hash = memchr(line, '#', len);
	const char *p = line, *end = hash ? hash : line + len, *token, *services, *extra;
	size_t tlen = tokens_word(&p, end, &token), slen = tokens_word(&p, end, &services);
	struct token_entry *e, *bigger;

	if (tlen == 0)
		return 0;
	*why = "expected TOKEN SERVICE[,SERVICE...]";
	if (slen == 0 || tokens_word(&p, end, &extra) != 0)
		return -EINVAL;
	*why = "the token is not a bearer token (letters, digits, -._~+/ then =)";
	if (!handshake_token_valid(token, tlen))
		return -EINVAL;
	*why = "the token is listed twice";
	for (size_t i = 0; i < t->count; i++)
		if (t->items[i].len == tlen && memcmp(t->items[i].token, token, tlen) == 0)
			return -EINVAL;
	bigger = realloc(t->items, (t->count + 1) * sizeof *bigger);
	if (bigger == NULL)
		return -ENOMEM;
	t->items = bigger;
	e = &t->items[t->count++];
	memset(e, 0, sizeof *e);
	e->token = strndup(token, tlen);
	e->len = tlen;
	if (e->token == NULL)
		return -ENOMEM;
	*why = "a service is not a DNS-style name (a-z, 0-9, '-', '.') or \"*\"";
	return tokens_parse_services(t, e, services, slen);
}

/* Parses a whole tokens file held in text. On success *out is a new
 * struct tokens with one reference. On failure err says which line is
 * wrong and why. Returns 0, -EINVAL or -ENOMEM. */
int
tokens_parse(const char *text, size_t len, struct tokens **out, char *err, size_t err_len)
{
	struct tokens *t = calloc(1, sizeof *t);
	const char *p = text, *end = text + len, *why = "out of memory";
	int line = 0, rc = -ENOMEM;

	*out = NULL;
	if (t == NULL)
		goto out_err;
	atomic_init(&t->refs, 1);
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = lf ? lf : end;
		line++;
		rc = memchr(p, '\0', (size_t)(line_end - p)) ? -EINVAL : 0;
		why = "a NUL byte";
		if (rc == 0)
			rc = tokens_parse_line(t, p, (size_t)(line_end - p), &why);
		if (rc < 0)
			goto out_err;
		p = lf ? lf + 1 : end;
	}
	*out = t;
	return 0;
out_err:
	snprintf(err, err_len, "line %d: %s", line, why);
	tokens_unref(t);
	return rc;
}

/* Reads and parses the file at path (at most 1 MiB). Returns 0 or a
 * negative code, with err describing it. */
int
tokens_load(const char *path, struct tokens **out, char *err, size_t err_len)
{
	FILE *f = fopen(path, "re");
	char *text;
	size_t len;
	int rc;

	*out = NULL;
	if (f == NULL) {
		rc = -errno;
		snprintf(err, err_len, "%s: %s", path, ptth_strerror(rc));
		return rc;
	}
	text = malloc(TOKENS_FILE_MAX + 1);
	len = text ? fread(text, 1, TOKENS_FILE_MAX + 1, f) : 0;
	rc = text == NULL ? -ENOMEM : ferror(f) ? -EIO : len > TOKENS_FILE_MAX ? -EFBIG : 0;
	fclose(f);
	if (rc < 0) {
		snprintf(err, err_len, "%s: %s", path, ptth_strerror(rc));
	} else {
		char why[256];
		rc = tokens_parse(text, len, out, why, sizeof why);
		if (rc < 0)
			snprintf(err, err_len, "%s: %s", path, why);
	}
	free(text);
	return rc;
}

/* Compares offered (len bytes) with a stored token in time that depends
 * on the stored token's length only, never on where they differ. */
static bool
tokens_equal(const char *offered, size_t len, const struct token_entry *e)
{
	volatile unsigned char diff = (unsigned char)(len != e->len);

	for (size_t i = 0; i < e->len; i++)
		diff |= (unsigned char)e->token[i] ^ (unsigned char)(i < len ? offered[i] : 0);
	return diff == 0;
}

/* Says whether token may serve service ("" for the default pool, which
 * only a "*" token may join). Every stored token is compared, match or
 * not, so the time taken does not tell which one (nearly) matched. */
enum tokens_verdict
tokens_check(const struct tokens *t, const char *token, const char *service)
{
	const struct token_entry *found = NULL;
	size_t len = strlen(token);

	for (size_t i = 0; i < t->count; i++)
		if (tokens_equal(token, len, &t->items[i]))
			found = &t->items[i];
	if (found == NULL)
		return TOKENS_UNKNOWN;
	if (found->any)
		return TOKENS_ALLOWED;
	for (size_t j = 0; service[0] != '\0' && j < found->count; j++)
		if (strcmp(found->services[j], service) == 0)
			return TOKENS_ALLOWED;
	return TOKENS_FORBIDDEN;
}

size_t
tokens_count(const struct tokens *t)
{
	return t->count;
}

/* The services the file names (not "*"), each once. */
size_t
tokens_service_count(const struct tokens *t)
{
	return t->name_count;
}

const char *
tokens_service_at(const struct tokens *t, size_t i)
{
	return i < t->name_count ? t->names[i] : NULL;
}
