#!/bin/sh
# Installs the reference systems used by `go run ./bench/compare` (issue 10):
#   - nginx from the Debian package (only the binary is used; the service is not started),
#   - tusd v2.9.1 into .cache/bin/tusd (go install; takes about 2 minutes to build).
# Idempotent: does nothing for tools that are already present.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
TUSD_VERSION="${TUSD_VERSION:-v2.9.1}"

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
	echo "install-bench-tools: installing nginx (apt)" >&2
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
fi

if [ ! -x "$root/.cache/bin/tusd" ] || ! "$root/.cache/bin/tusd" -version 2>/dev/null | grep -q "$TUSD_VERSION"; then
	echo "install-bench-tools: building tusd $TUSD_VERSION into .cache/bin (about 2 min)" >&2
	mkdir -p "$root/.cache/bin"
	# Outside the depot module so that its go.mod is untouched.
	(cd /tmp && GOBIN="$root/.cache/bin" GOFLAGS=-mod=mod go install "github.com/tus/tusd/v2/cmd/tusd@$TUSD_VERSION")
fi

echo "nginx: $(command -v nginx || echo /usr/sbin/nginx)"
echo "tusd:  $root/.cache/bin/tusd"
