/* routes.h -- the backend's teaching routes, shared by bin/backend and
 * the test suites. See routes.c. */
#ifndef PTTH_EXAMPLE_ROUTES_H
#define PTTH_EXAMPLE_ROUTES_H

#include <stdbool.h>

#include "ptth.h"

/* How the routes behave. It must outlive the mux: every handler gets it
 * as its argument. */
struct routes_conf {
	long foo_delay_ms;        /* GET /foo sleeps this long first (0: not at all) */
	bool log;                 /* "handling: PATH" on stderr for each request */
	const char *service;      /* GET /service's answer (NULL: "default") */
	/* How GET /foo's delay and GET /sleep wait. NULL sleeps for real; a
	 * test passes a wait that its teardown can cut short. */
	void (*sleep)(long ms, void *arg);
	void *sleep_arg;
};

/* Registers every teaching route on mux, each with conf (NULL: no delay,
 * no log, service "default") as its argument. Returns 0 or the first
 * negative code ptth_mux_handle() returned. */
int routes_register(struct ptth_mux *mux, const struct routes_conf *conf);

/* Reads name=N from a query string ("a=1&n=5"): N, or def when name is
 * absent, negative or not a number. */
long long routes_query_number(const char *query, const char *name, long long def);

#endif
