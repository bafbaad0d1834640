# curl-foo.sh -- what curl sends for GET /foo and what comes back: the
# request and response heads (curl -v's ">" and "<" lines) and the body.
set -euo pipefail
source scripts/tutorial-outputs/servers.sh
start_servers --quiet
echo '$ curl -v localhost:8888/foo'
user_curl -sv http://localhost:8888/foo 2>&1 | sed -n 's/\r$//; /^[<>]/p; /^[^*<>{}]/p'
echo
