#!/usr/bin/env bash
# need-packages.sh -- make sure the Debian packages named on the command line
# are installed, installing the missing ones with apt-get.
#
# Usage: scripts/need-packages.sh PKG...
#
# Quiet when everything is present: one dpkg-query call checks all packages,
# so running this before every build costs a few milliseconds. When packages
# are missing it prints one line naming them, then runs apt-get update (once)
# and apt-get install, through sudo unless already root. On a system without
# dpkg it prints what is needed and exits 1; set PTTH_SKIP_PACKAGE_CHECK=1 to
# skip the check there once the equivalents are installed by hand.
set -euo pipefail

[[ $# -gt 0 ]] || exit 0
[[ ${PTTH_SKIP_PACKAGE_CHECK:-0} == 1 ]] && exit 0

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "ptth: not a dpkg system; install the equivalents of: $*" >&2
	echo "ptth: then set PTTH_SKIP_PACKAGE_CHECK=1 to skip this check" >&2
	exit 1
fi

# One line per known package (one per architecture for multi-arch ones):
# "name install ok installed". Unknown packages print nothing here and a
# complaint on stderr, which we discard; they count as missing.
declare -A installed=()
while read -r name status; do
	[[ $status == "install ok installed" ]] && installed[${name%%:*}]=1
done < <(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null || true)

missing=()
for pkg in "$@"; do
	[[ -n ${installed[${pkg%%:*}]:-} ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "ptth: installing missing packages: ${missing[*]}" >&2

as_root=()
if [[ $(id -u) -ne 0 ]]; then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "ptth: not root and no sudo; install them by hand" >&2
		exit 1
	fi
	as_root=(sudo)
fi

"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
