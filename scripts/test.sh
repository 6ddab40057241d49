#!/usr/bin/env bash
# The one test command of depot (README): formatting, vet, and every test with
# the race detector. It starts or installs what the tests need: PostgreSQL on
# 127.0.0.1:5432, the npm packages of the tus-js-client test and clamd.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== environment"
go version
scripts/ensure-postgres.sh
# Each installer does nothing when its tool is already there.
for script in install-tus-js-client.sh install-chromium.sh install-ops-tools.sh install-clamav.sh install-sftp-clients.sh install-age.sh; do
	if [ -x "scripts/$script" ]; then "scripts/$script"; fi
done
scripts/s3-server.sh install

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
export DEPOT_TEST_POSTGRES_URL="${DEPOT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
go test -race -count=1 -timeout 30m "$@" ./...
