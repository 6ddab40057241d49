#!/usr/bin/env bash
# SFTP throughput beside `curl -T` through web on the same machine (issue 23).
# Builds depot (or uses $BIN), starts a services and a web process with the
# SFTP entrance (SQLite, local storage, ports 7901-7903), registers an SSH key,
# then uploads a random file of $SIZE bytes (default 1 GiB) N times (default
# 3) alternately with curl -T (HTTP PUT through web) and OpenSSH sftp put,
# and downloads it N times with each (curl -o /dev/null, sftp get to
# /dev/null). It prints each run's MiB/s, the medians, the CPU seconds per
# GiB of web and services, and the load average before and after (the
# machine may be shared: read figures beside it).
#
#   bench/sftp.sh                        # from the module root
#   SIZE=$((2<<30)) N=3 bench/sftp.sh    # 2 GiB
#   CIPHER=aes128-gcm@openssh.com bench/sftp.sh   # sftp -c (default: OpenSSH's choice, chacha20-poly1305)
# While it runs, web's profiler answers on 127.0.0.1:7912 (/debug/pprof/).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/depot-sftpbench-XXXXXX")
trap 'kill $svc $web 2>/dev/null || true; rm -rf "$dir"' EXIT
if [ -n "${BIN:-}" ]; then cp "$BIN" "$dir/depot"; else (cd "$root" && go build -o "$dir/depot" ./cmd/depot); fi
n=${N:-3}
size=${SIZE:-$((1 << 30))}
export DEPOT_DATABASE_URL="sqlite://$dir/depot.db"
"$dir/depot" migrate >/dev/null
"$dir/depot" users add bench >/dev/null
"$dir/depot" cohorts add b >/dev/null
"$dir/depot" cohorts grant bench b manager >/dev/null
token=$("$dir/depot" tokens create bench)
ssh-keygen -q -t ed25519 -N "" -f "$dir/id" -C bench
"$dir/depot" users add-key bench "$dir/id.pub" >/dev/null
"$dir/depot" certs dev --out "$dir/certs" >/dev/null 2>&1
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")
DEPOT_ROLE=services DEPOT_INTERNAL_ADDR=127.0.0.1:7901 DEPOT_INTERNAL_KEYS=$key \
	DEPOT_STORAGE_URL="file://$dir/files" DEPOT_LOG_LEVEL=warn "$dir/depot" serve 2>"$dir/services.log" &
svc=$!
sleep 1
env -u DEPOT_DATABASE_URL DEPOT_ROLE=web DEPOT_ADDR=127.0.0.1:7902 DEPOT_SERVICES_URL=http://127.0.0.1:7901 \
	DEPOT_INTERNAL_KEY=$key DEPOT_SFTP_ADDR=127.0.0.1:7903 DEPOT_SFTP_HOST_KEY_FILE="$dir/certs/sftp_host_ed25519_key" \
	DEPOT_METRICS_ADDR=127.0.0.1:7912 DEPOT_PPROF=on DEPOT_LOG_LEVEL=warn "$dir/depot" serve 2>"$dir/web.log" &
web=$!
sleep 1
echo "[127.0.0.1]:7903 $(ssh-keygen -y -f "$dir/certs/sftp_host_ed25519_key")" >"$dir/known_hosts"
sftpc=(sftp -q -P 7903 -i "$dir/id" -o UserKnownHostsFile="$dir/known_hosts" -o BatchMode=yes -o IdentitiesOnly=yes
	-o IdentityAgent=none ${CIPHER:+-c "$CIPHER"} -b - bench@127.0.0.1)
head -c "$size" /dev/urandom >"$dir/payload"
cat "$dir/payload" >/dev/null
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
now() { date +%s.%N; }
hz=$(getconf CLK_TCK)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; size $size bytes, $n runs each"
declare -A speeds cpuw cpus
run() { # run NAME COMMAND...: one timed transfer; appends MiB/s and CPU
	local s0 w0 t0 t1
	s0=$(cpu $svc) w0=$(cpu $web) t0=$(now)
	"${@:2}" >/dev/null
	t1=$(now)
	speeds[$1]+=" $(awk -v b="$size" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f", b / 1048576 / (z - a) }')"
	cpuw[$1]+=" $(awk -v d="$(($(cpu $web) - w0))" -v hz="$hz" -v b="$size" 'BEGIN { printf "%.2f", d / hz / (b / 1073741824) }')"
	cpus[$1]+=" $(awk -v d="$(($(cpu $svc) - s0))" -v hz="$hz" -v b="$size" 'BEGIN { printf "%.2f", d / hz / (b / 1073741824) }')"
}
for i in $(seq 1 "$n"); do
	run "curl -T" curl -sf -o /dev/null -T "$dir/payload" -H "Authorization: Bearer $token" "http://127.0.0.1:7902/api/v1/files/b/c$i.bin"
	run "sftp put" "${sftpc[@]}" <<<"put $dir/payload /b/s$i.bin"
done
for i in $(seq 1 "$n"); do
	run "curl get" curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:7902/api/v1/files/b/c1.bin"
	run "sftp get" "${sftpc[@]}" <<<"get /b/s1.bin /dev/null"
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
for k in "curl -T" "sftp put" "curl get" "sftp get"; do
	printf "%-9s MiB/s:%s  median %s   CPU s/GiB web:%s  services:%s\n" "$k" "${speeds[$k]}" \
		"$(median <<<"${speeds[$k]}")" "${cpuw[$k]}" "${cpus[$k]}"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
# The first SFTP upload is intact (read back through HTTP).
want=$(sha256sum <"$dir/payload" | cut -d' ' -f1)
got=$(curl -sf -H "Authorization: Bearer $token" http://127.0.0.1:7902/api/v1/files/b/s1.bin | sha256sum | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
	echo "s1.bin differs: $got, want $want" >&2
	exit 1
fi
