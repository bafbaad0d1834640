/*
 * websocket_upgrade.c -- the router's side of a WebSocket opening
 * handshake (RFC 6455 section 4) carried over HTTP/2 as an extended
 * CONNECT (RFC 8441): the checks a user's HTTP/1.1 Upgrade must pass,
 * the HTTP/2 request it becomes, and the 101 answer with the
 * Sec-WebSocket-Accept value the router computes itself.
 *
 * Owns:    nothing beyond what each call returns to its caller.
 * Threads: any; every function works on its arguments alone. The user
 *          connection thread calls them (user_conn.c).
 * Locks:   none.
 * Interface:
 *   - websocket_upgrade_check(): an ordinary request (no Upgrade:
 *     websocket with Connection: upgrade), a valid opening handshake, or
 *     one to refuse with 400 (malformed) or 426 (another
 *     Sec-WebSocket-Version; the answer names 13);
 *   - websocket_accept_value(): base64(SHA-1(key + GUID)), RFC 6455
 *     section 4.2.2, with libcrypto's SHA-1 and base64;
 *   - websocket_request_to_h2(): the extended CONNECT (:method CONNECT,
 *     :protocol websocket) with the user's end-to-end fields, without
 *     Sec-WebSocket-Key, Connection or Upgrade (RFC 8441 section 5);
 *   - websocket_response_head(): "101 Switching Protocols" for a backend's
 *     2xx, with the backend's fields (Sec-WebSocket-Protocol, -Extensions).
 * Tutorial: "A connection that stays open".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>

#include "websocket_upgrade.h"

/* RFC 6455 section 1.3: the GUID appended to the key before hashing. */
#define WEBSOCKET_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* The fields of the user's request that the extended CONNECT leaves out:
 * the key is answered by the router (RFC 8441 section 5 has none). */
static const char *const websocket_dropped[] = { "sec-websocket-key", NULL };

/* The number of fields called name, and the value of the last one. */
static int
websocket_field(const struct header_list *l, const char *name, const char **value)
{
	int count = 0;

	*value = NULL;
	for (size_t i = 0; i < l->count; i++) {
		if (strcasecmp(l->items[i].name, name) == 0) {
			*value = l->items[i].value;
			count++;
		}
	}
	return count;
}

/* True when a comma-separated field, over all its lines, lists token. */
static bool
websocket_lists(const struct header_list *l, const char *name, const char *token)
{
	char *joined = header_list_join(l, name);
	bool found = joined != NULL && headers_token_in_list(joined, token);

	free(joined);
	return found;
}

/* RFC 6455 section 4.1: the key is 16 random bytes in base64, that is
 * 22 characters and "==". The last character carries 2 bits of data;
 * its other 4 bits are zero in the canonical encoding. */
static bool
websocket_key_is_valid(const char *key)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *last;

	if (strlen(key) != 24 || strcmp(key + 22, "==") != 0)
		return false;
	for (int i = 0; i < 22; i++)
		if (key[i] == '\0' || strchr(alphabet, key[i]) == NULL)
			return false;
	last = strchr(alphabet, key[21]);
	return ((last - alphabet) & 0x0f) == 0;
}

/* The version check of RFC 6455 section 4.2.2: exactly one field of
 * digits; 13 is ours, another number gets 426 and the version we speak.
 * Returns 0, or the status to answer with *text set. */
static int
websocket_check_version(const struct header_list *fields, const char **text)
{
	const char *version;
	int count = websocket_field(fields, "sec-websocket-version", &version);

	if (count != 1 || version[0] == '\0' ||
	    strspn(version, "0123456789") != strlen(version)) {
		*text = "WebSocket handshake needs one numeric Sec-WebSocket-Version";
		return 400;
	}
	if (strcmp(version, "13") != 0) {
		*text = "only WebSocket version 13 is spoken here";
		return 426;
	}
	return 0;
}

/* Judges a request head. It asks to become a WebSocket when its Upgrade
 * field lists "websocket" and its Connection field lists "upgrade" (RFC
 * 9110 section 7.8: without that option, or in HTTP/1.0, Upgrade is
 * ignored, and the request is an ordinary one whose Upgrade is dropped
 * with the other hop-by-hop fields). It must then be a GET without a
 * body, with exactly one valid Sec-WebSocket-Key and
 * Sec-WebSocket-Version 13 (RFC 6455 section 4.2.1); Host was checked by
 * the parser already. Returns the verdict; for WEBSOCKET_REFUSE,
 * *status (400 or 426) and *text say what to answer. */
enum websocket_verdict
websocket_upgrade_check(const struct http1_head *head, bool has_body, int *status,
                        const char **text)
{
	const struct header_list *fields = &head->fields;
	const char *key;

	*status = 400;
	if (!websocket_lists(fields, "upgrade", "websocket") ||
	    !websocket_lists(fields, "connection", "upgrade") || head->version_minor < 1)
		return WEBSOCKET_NONE;
	if (strcmp(head->method, "GET") != 0)
		*text = "WebSocket handshake must be a GET";
	else if (has_body)
		*text = "WebSocket handshake must have no body";
	else if (websocket_field(fields, "sec-websocket-key", &key) != 1 ||
	         !websocket_key_is_valid(key))
		*text = "WebSocket handshake needs one valid Sec-WebSocket-Key";
	else if ((*status = websocket_check_version(fields, text)) == 0)
		return WEBSOCKET_VALID;
	return WEBSOCKET_REFUSE;
}

/* Computes Sec-WebSocket-Accept for key (RFC 6455 section 4.2.2):
 * base64(SHA-1(key + GUID)), 28 characters and a NUL in accept.
 * Returns 0, or -EINVAL when the key is too long or libcrypto fails. */
int
websocket_accept_value(const char *key, char accept[WEBSOCKET_ACCEPT_LEN + 1])
{
	char joined[128];
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	int len = snprintf(joined, sizeof joined, "%s%s", key, WEBSOCKET_GUID);

	if (len < 0 || len >= (int)sizeof joined)
		return -EINVAL;
	if (EVP_Digest(joined, (size_t)len, digest, &digest_len, EVP_sha1(), NULL) != 1 ||
	    digest_len != 20)
		return -EINVAL;
	/* EVP_EncodeBlock writes 4 characters per 3 bytes and a NUL. */
	if (EVP_EncodeBlock((unsigned char *)accept, digest, 20) != WEBSOCKET_ACCEPT_LEN)
		return -EINVAL;
	return 0;
}

static bool
websocket_is_dropped(const char *name)
{
	for (int i = 0; websocket_dropped[i] != NULL; i++)
		if (strcasecmp(name, websocket_dropped[i]) == 0)
			return true;
	return false;
}

/* Builds the extended CONNECT of RFC 8441 section 4 in out (empty):
 * the ordinary HTTP/2 form of the request (headers_request_to_h2(),
 * which drops Connection, Upgrade and every other hop-by-hop field),
 * with :method CONNECT and :protocol websocket, and without
 * Sec-WebSocket-Key. Returns 0 or -ENOMEM. */
int
websocket_request_to_h2(const struct http1_head *head, const char *client_ip,
                        struct header_list *out)
{
	struct header_list plain;
	int rc;

	header_list_init(&plain);
	rc = headers_request_to_h2(head, client_ip, &plain);
	for (size_t i = 0; rc == 0 && i < plain.count; i++) {
		const struct header *h = &plain.items[i];
		if (strcmp(h->name, ":method") == 0) {
			rc = header_list_add(out, ":method", 7, "CONNECT", 7);
			if (rc == 0)
				rc = header_list_add(out, ":protocol", 9, "websocket", 9);
		} else if (!websocket_is_dropped(h->name)) {
			rc = header_list_add(out, h->name, h->name_len, h->value, h->value_len);
		}
	}
	header_list_free(&plain);
	return rc;
}

/* Formats the user's "101 Switching Protocols" for a backend that
 * accepted (2xx): Upgrade, Connection, the router's Sec-WebSocket-Accept,
 * and the backend's end-to-end fields but its own Sec-WebSocket-Accept
 * and Content-Length, which do not belong in a 101. *out is malloc'd,
 * *out_len bytes, not NUL-terminated; the caller frees it.
 * Returns 0 or -ENOMEM. */
int
websocket_response_head(const struct header_list *in_head, const char *accept,
                        char **out, size_t *out_len)
{
	struct header_list kept;
	char switching[160];
	int rc = 0;

	header_list_init(&kept);
	for (size_t i = 0; rc == 0 && i < in_head->count; i++) {
		const struct header *h = &in_head->items[i];
		if (strcasecmp(h->name, "content-length") == 0 ||
		    strcasecmp(h->name, "sec-websocket-accept") == 0)
			continue;
		rc = header_list_add(&kept, h->name, h->name_len, h->value, h->value_len);
	}
	snprintf(switching, sizeof switching,
	         "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s", accept);
	if (rc == 0)
		rc = headers_response_to_http1(101, &kept, switching, out, out_len);
	header_list_free(&kept);
	return rc;
}
