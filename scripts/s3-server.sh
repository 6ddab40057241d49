#!/usr/bin/env bash
# Runs versitygw, an S3-compatible gateway over a local directory, on
# loopback for depot's S3 storage driver (tests, development, benchmarks).
#
#   scripts/s3-server.sh install   build .cache/bin/versitygw if missing (~90 s)
#   scripts/s3-server.sh [start]   install, start in the background, print the endpoint
#   scripts/s3-server.sh stop      stop the server started by "start" (pid file)
#
# Environment: S3_PORT (default 7070), S3_DIR (default .cache/s3/data),
# S3_BUCKET (default depot, created on start), ROOT_ACCESS_KEY and
# ROOT_SECRET_KEY (defaults depotaccess / depotsecret-local-only).
# After "start", use for example:
#   AWS_ACCESS_KEY_ID=$ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$ROOT_SECRET_KEY \
#   DEPOT_STORAGE_URL='s3://depot/files?endpoint=http://127.0.0.1:7070&region=us-east-1'
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/.cache/bin/versitygw
version=v1.8.0
port=${S3_PORT:-7070}
dir=${S3_DIR:-$root/.cache/s3/data}
bucket=${S3_BUCKET:-depot}
access=${ROOT_ACCESS_KEY:-depotaccess}
secret=${ROOT_SECRET_KEY:-depotsecret-local-only}
run=$root/.cache/s3
pidfile=$run/versitygw.pid

install() {
	if [ -x "$bin" ]; then return; fi
	echo "s3-server: building versitygw $version (about 90 s)" >&2
	mkdir -p "$root/.cache/bin"
	GOBIN=$root/.cache/bin go install "github.com/versity/versitygw/cmd/versitygw@$version"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
	install
	mkdir -p "$dir" "$run"
	if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		echo "s3-server: already running (pid $(cat "$pidfile"))" >&2
		cat "$run/endpoint"
		return
	else
		if listening; then
			echo "s3-server: port $port is taken by another process" >&2
			exit 1
		fi
		ROOT_ACCESS_KEY=$access ROOT_SECRET_KEY=$secret \
			nohup "$bin" --port "127.0.0.1:$port" posix "$dir" >"$run/versitygw.log" 2>&1 &
		echo $! >"$pidfile"
		for _ in $(seq 1 100); do listening && break; sleep 0.1; done
		if ! listening; then
			echo "s3-server: versitygw did not start; see $run/versitygw.log" >&2
			exit 1
		fi
	fi
	# A posix bucket is a directory; versitygw also accepts CreateBucket, but
	# creating the directory needs no client.
	mkdir -p "$dir/$bucket"
	echo "http://127.0.0.1:$port" | tee "$run/endpoint"
}

stop() {
	if [ -f "$pidfile" ]; then
		pid=$(cat "$pidfile")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid"
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		fi
		rm -f "$pidfile" "$run/endpoint"
		echo "s3-server: stopped" >&2
	else
		echo "s3-server: not running" >&2
	fi
}

case "${1:-start}" in
install) install ;;
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 [install|start|stop]" >&2
	exit 2
	;;
esac
