#!/bin/sh
# Installs the age command (Debian package "age"), the independent tool that
# decrypts a stored object by hand (docs/operations.md, "Decrypting a file
# without depot"); e2e/encryption_test.go runs exactly that command. Does
# nothing when age is present. When it cannot install, it warns and exits 0
# (the test then skips that step) unless CI=true, where it fails.
set -eu
if command -v age >/dev/null 2>&1; then
	echo "age ready: $(age --version 2>&1)"
	exit 0
fi
fail() {
	echo "install-age: $*" >&2
	if [ "${CI:-}" = true ]; then exit 1; fi
	echo "install-age: continuing; the age decryption test will skip" >&2
	exit 0
}
command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install age yourself"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || fail "need root or sudo to install age"
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-age: installing age (apt)" >&2
$SUDO apt-get update -qq || fail "apt-get update failed"
$SUDO apt-get install -y -qq --no-install-recommends age >/dev/null || fail "apt-get install age failed"
echo "age ready: $(age --version 2>&1)"
