# curl-headers.sh -- the fields the backend receives for a request with a
# Connection-named field and a TE list: GET /headers lists them.
set -euo pipefail
source scripts/tutorial-outputs/servers.sh
start_servers --quiet
echo "\$ curl -H 'Connection: X-Foo' -H 'X-Foo: 1' -H 'TE: trailers, deflate' localhost:8888/headers"
user_curl -s -H 'Connection: X-Foo' -H 'X-Foo: 1' -H 'TE: trailers, deflate' \
	http://localhost:8888/headers
