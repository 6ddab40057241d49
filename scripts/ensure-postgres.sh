#!/usr/bin/env bash
# Makes sure PostgreSQL answers on 127.0.0.1:5432 (user postgres, database
# test, trust auth), installing and starting the Debian cluster if needed.
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if command -v pg_isready >/dev/null && ready; then
	echo "postgres: ready"
else
	if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
		echo "postgres: installing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
	fi
	echo "postgres: starting"
	pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
	for _ in $(seq 1 30); do ready && break; sleep 1; done
	ready || { echo "postgres: not reachable on 127.0.0.1:5432"; exit 1; }
fi
psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 ||
	psql -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE test" >/dev/null
