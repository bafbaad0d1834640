/* websocket_upgrade.h -- the router's side of a WebSocket opening
 * handshake: the user's HTTP/1.1 Upgrade judged, turned into an RFC 8441
 * extended CONNECT, and the 101 answer built. See websocket_upgrade.c. */
#ifndef PTTH_WEBSOCKET_UPGRADE_H
#define PTTH_WEBSOCKET_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "headers.h"

/* Sec-WebSocket-Accept is base64 of a 20-byte SHA-1: 28 characters. */
#define WEBSOCKET_ACCEPT_LEN 28

/* What websocket_upgrade_check() found. */
enum websocket_verdict {
	WEBSOCKET_NONE = 0,     /* not a WebSocket handshake: an ordinary request */
	WEBSOCKET_VALID = 1,    /* a valid opening handshake */
	WEBSOCKET_REFUSE = -1,  /* a malformed one: answer *status with *text */
};

enum websocket_verdict websocket_upgrade_check(const struct http1_head *head, bool has_body,
                                               int *status, const char **text);
int websocket_accept_value(const char *key, char accept[WEBSOCKET_ACCEPT_LEN + 1]);
int websocket_request_to_h2(const struct http1_head *head, const char *client_ip,
                            struct header_list *out);
int websocket_response_head(const struct header_list *in_head, const char *accept,
                            char **out, size_t *out_len);

#endif
