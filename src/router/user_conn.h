/* user_conn.h -- one user's HTTP/1.1 connection and its thread. See user_conn.c. */
#ifndef PTTH_USER_CONN_H
#define PTTH_USER_CONN_H

#include <stdbool.h>

struct ptth_router;
struct user_conn;

int user_conn_start(struct ptth_router *r, int fd);
void user_conn_shutdown(struct user_conn *c);
void user_conn_link(struct user_conn **head, struct user_conn *c);
void user_conn_unlink(struct user_conn **head, struct user_conn *c);
struct user_conn *user_conn_next(struct user_conn *c);
void user_conn_set_idle(struct user_conn *c, bool idle);
bool user_conn_is_idle(struct user_conn *c);

#endif
