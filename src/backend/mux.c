/*
 * mux.c -- a path mux like Go's http.ServeMux, reduced to exact paths.
 *
 * Owns:    its routes (path copies).
 * Threads: routes are registered before serving starts; afterwards any
 *          handler thread reads them.
 * Locks:   none: the table is immutable once the backend runs.
 * Interface:
 *   - ptth_mux_handle(mux, "/foo", fn, arg) registers a route;
 *   - ptth_mux_serve is itself a handler: pass it with the mux as arg;
 *   - anything unregistered is answered 404, as Go's default mux does.
 * Tutorial: "The backend answers".
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ptth.h"

struct mux_route {
	char *path;
	ptth_handler_fn fn;
	void *arg;
};

struct ptth_mux {
	struct mux_route *routes;
	size_t count;
};

struct ptth_mux *
ptth_mux_new(void)
{
	return calloc(1, sizeof(struct ptth_mux));
}

int
ptth_mux_handle(struct ptth_mux *mux, const char *path, ptth_handler_fn fn, void *arg)
{
	struct mux_route *routes;

	for (size_t i = 0; i < mux->count; i++)
		if (strcmp(mux->routes[i].path, path) == 0)
			return -EEXIST;
	routes = realloc(mux->routes, (mux->count + 1) * sizeof *routes);
	if (routes == NULL)
		return -ENOMEM;
	mux->routes = routes;
	routes[mux->count].path = strdup(path);
	if (routes[mux->count].path == NULL)
		return -ENOMEM;
	routes[mux->count].fn = fn;
	routes[mux->count].arg = arg;
	mux->count++;
	return 0;
}

void
ptth_mux_free(struct ptth_mux *mux)
{
	if (mux == NULL)
		return;
	for (size_t i = 0; i < mux->count; i++)
		free(mux->routes[i].path);
	free(mux->routes);
	free(mux);
}

void
ptth_mux_serve(struct ptth_request *req, struct ptth_response *res, void *arg)
{
	static const char not_found[] = "404 page not found\n";
	struct ptth_mux *mux = arg;
	const char *path = ptth_request_path(req);

	for (size_t i = 0; i < mux->count; i++) {
		if (strcmp(mux->routes[i].path, path) == 0) {
			mux->routes[i].fn(req, res, mux->routes[i].arg);
			return;
		}
	}
	ptth_response_send(res, 404, "text/plain; charset=utf-8", not_found,
	                   sizeof not_found - 1);
}
