#!/usr/bin/env bash
# build.sh -- build the re-created Go proof of concept (gorouter, gobackend)
# that tests/test_compat.c runs as peers.
#
# Usage: tests/compat/build.sh OUTDIR
#
# Offline: Go comes from Debian's golang-go and golang.org/x/net from
# golang-golang-x-net-dev (under /usr/share/gocode), built in GOPATH mode.
# OUTDIR gets the two binaries, the build cache (.cache) and a GOPATH
# (.gopath), where .gopath/src/ptth is a symlink to this directory.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
gocode=/usr/share/gocode

if ! command -v go >/dev/null 2>&1; then
	echo "build.sh: go not found; install the Debian package golang-go" >&2
	exit 1
fi
if [[ ! -d $gocode/src/golang.org/x/net/http2 ]]; then
	echo "build.sh: golang.org/x/net not in $gocode; install golang-golang-x-net-dev" >&2
	exit 1
fi

mkdir -p "$out/.gopath/src"
out=$(cd "$out" && pwd)
ln -sfn "$here" "$out/.gopath/src/ptth"

export GO111MODULE=off GOFLAGS= GOENV=off CGO_ENABLED=0
export GOPATH=$out/.gopath:$gocode GOCACHE=$out/.cache
for cmd in gorouter gobackend; do
	go build -o "$out/$cmd" "ptth/cmd/$cmd"
done
