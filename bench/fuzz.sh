#!/usr/bin/env bash
# Runs every fuzz target of depot for a set time each (default 60s) and
# prints one line per target. Usage: bench/fuzz.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
dur="${1:-60s}"
targets=(
	". FuzzValidateKey"
	"./internal/httpauth FuzzVerify"
	"./internal/wire FuzzDecodeRequest"
	"./servicedb FuzzCanonical"
	"./servicedb FuzzMetadataJSON"
	"./web FuzzTusHeaders"
	"./web FuzzUploadConcat"
	"./internal/sessioncookie FuzzOpen"
)
for t in "${targets[@]}"; do
	set -- $t
	if ! grep -rqs "func $2(" "$1"/*_test.go; then
		echo "skip $2 (not defined in $1)"; continue
	fi
	start=$(date +%s)
	out=$(go test -run '^$' -fuzz "^$2\$" -fuzztime "$dur" "$1" 2>&1) && rc=0 || rc=$?
	# go test -fuzz sometimes ends a clean run with "context deadline exceeded"
	# as the time runs out; only a written failing input is a crash.
	if [ $rc -eq 0 ] || { echo "$out" | grep -q "context deadline exceeded" && ! echo "$out" | grep -q "Failing input written"; }; then
		echo "ok   $2 ($1) ran $(( $(date +%s) - start ))s: $(echo "$out" | grep -oE 'execs: [0-9]+' | tail -1), no crash"
	else
		echo "FAIL $2 ($1)"; echo "$out" | tail -20; exit 1
	fi
done
