#!/usr/bin/env bash
# CPU accounting of uploads through the web tier with curl as the client:
# builds depot (or uses $BIN), starts a services and a web process (SQLite,
# local storage, ports 7801/7802, pprof on 7811/7812 while it runs), uploads
# a 1 GiB random file N times (default 6) with `curl -T`, and prints each
# upload's MiB/s, their median, and the CPU seconds per GiB of web, services
# and curl (utime+stime from /proc/PID/stat); then downloads the first file
# N times through web (curl -o /dev/null) and prints the same for downloads.
#
#   bench/curlcpu/run.sh                  # from the module root
#   N=4 BIN=/tmp/depot.old bench/curlcpu/run.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/depot-curlcpu-XXXXXX")
trap 'kill $svc $web 2>/dev/null || true; rm -rf "$dir"' EXIT
if [ -n "${BIN:-}" ]; then cp "$BIN" "$dir/depot"; else (cd "$root" && go build -o "$dir/depot" ./cmd/depot); fi
n=${N:-6}
export DEPOT_DATABASE_URL="sqlite://$dir/depot.db"
"$dir/depot" migrate >/dev/null
"$dir/depot" users add bench >/dev/null
"$dir/depot" cohorts add b >/dev/null
"$dir/depot" cohorts grant bench b manager >/dev/null # upload and download
token=$("$dir/depot" tokens create bench)
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")
DEPOT_ROLE=services DEPOT_INTERNAL_ADDR=127.0.0.1:7801 DEPOT_INTERNAL_KEYS=$key \
	DEPOT_STORAGE_URL="file://$dir/files" DEPOT_METRICS_ADDR=127.0.0.1:7811 DEPOT_PPROF=on \
	DEPOT_LOG_LEVEL=warn "$dir/depot" serve 2>"$dir/services.log" &
svc=$!
sleep 1
env -u DEPOT_DATABASE_URL DEPOT_ROLE=web DEPOT_ADDR=127.0.0.1:7802 DEPOT_SERVICES_URL=http://127.0.0.1:7801 \
	DEPOT_INTERNAL_KEY=$key DEPOT_METRICS_ADDR=127.0.0.1:7812 DEPOT_PPROF=on DEPOT_LOG_LEVEL=warn \
	"$dir/depot" serve 2>"$dir/web.log" &
web=$!
sleep 1
head -c $((1 << 30)) /dev/urandom >"$dir/payload"
cat "$dir/payload" >/dev/null
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
s0=$(cpu $svc) w0=$(cpu $web) t0=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o "$dir/curl.time" bash -c "for i in \$(seq 1 $n); do
	curl -sf -o /dev/null -w '%{speed_upload}\n' -T '$dir/payload' -H 'Authorization: Bearer $token' \
		http://127.0.0.1:7802/api/v1/files/b/p\$i.bin
done" >"$dir/speeds"
t1=$(date +%s.%N) s1=$(cpu $svc) w1=$(cpu $web)
report() { # report SPEEDS_FILE T0 T1 DSVC DWEB CURL_TIME_FILE
	awk -v t0="$2" -v t1="$3" -v s="$4" -v w="$5" -v hz="$(getconf CLK_TCK)" -v n="$n" \
		-v c="$(awk '{print $1 + $2}' "$6")" '
	{ v[NR] = $1 / 1048576; line = line sprintf(" %.0f", v[NR]) }
	END {
		for (i = 2; i <= NR; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { x = v[j]; v[j] = v[j - 1]; v[j - 1] = x }
		med = v[int((NR + 1) / 2)]
		printf "MiB/s:%s  median %.0f\n", line, med
		printf "CPU s/GiB: web %.2f  services %.2f  curl %.2f  (both cores busy %.0f %%)\n",
			w / hz / n, s / hz / n, c / n, 100 * (w / hz + s / hz + c) / (t1 - t0) / 2
	}' "$1"
}
echo "uploads (curl -T, through web):"
report "$dir/speeds" "$t0" "$t1" "$((s1 - s0))" "$((w1 - w0))" "$dir/curl.time"
s0=$(cpu $svc) w0=$(cpu $web) t0=$(date +%s.%N)
/usr/bin/time -f "%U %S" -o "$dir/curl.time" bash -c "for i in \$(seq 1 $n); do
	curl -sf -o /dev/null -w '%{speed_download}\n' -H 'Authorization: Bearer $token' \
		http://127.0.0.1:7802/api/v1/files/b/p1.bin
done" >"$dir/speeds"
t1=$(date +%s.%N) s1=$(cpu $svc) w1=$(cpu $web)
echo "downloads (curl -o /dev/null, through web):"
report "$dir/speeds" "$t0" "$t1" "$((s1 - s0))" "$((w1 - w0))" "$dir/curl.time"
