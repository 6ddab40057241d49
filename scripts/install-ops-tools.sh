#!/bin/sh
# Installs the operations tools the tests of deploy/ use, from Debian packages:
#   - promtool (package "prometheus"): `promtool check rules|config` and
#     `promtool test rules` on deploy/alerts.yml (e2e/alertrules_test.go),
#   - alertmanager (package "prometheus-alertmanager"): receives depot's
#     alerts in DEPOT_ALERT_FORMAT=alertmanager (e2e/alerts_test.go),
#   - nginx: `nginx -t` and a real proxy run of deploy/nginx-depot.conf
#     (e2e/nginx_test.go).
# Only the binaries are used; no service is started. Does nothing for tools
# already present. Needs apt and root (or sudo). When it cannot install, it
# warns and exits 0 (those tests then skip) unless CI=true, where it fails:
# in CI these tests must run.
set -eu
need=""
command -v promtool >/dev/null 2>&1 || need="$need prometheus"
command -v prometheus-alertmanager >/dev/null 2>&1 || [ -x /usr/bin/prometheus-alertmanager ] || need="$need prometheus-alertmanager"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
if [ -z "$need" ]; then
	echo "ops tools ready: $(promtool --version 2>&1 | head -1); $(/usr/sbin/nginx -v 2>&1)"
	exit 0
fi
fail() {
	echo "install-ops-tools: $*" >&2
	if [ "${CI:-}" = true ]; then exit 1; fi
	echo "install-ops-tools: continuing; the tests that need$need will skip" >&2
	exit 0
}
command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install$need yourself"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || fail "need root or sudo to install$need"
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-ops-tools: installing$need (apt)" >&2
$SUDO apt-get update -qq || fail "apt-get update failed"
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null || fail "apt-get install$need failed"
echo "ops tools ready: $(promtool --version 2>&1 | head -1); $(/usr/sbin/nginx -v 2>&1)"
