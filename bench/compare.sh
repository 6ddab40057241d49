#!/bin/sh
# One command for issue 10's reference comparison: installs nginx and tusd if
# missing, then runs the benchmark (arguments are passed on, e.g. -quick, or
# -size 2GiB -runs 3). Results go to docs/performance.md and
# docs/performance-chart.png. Run as root (nginx runs with `user root;`).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-bench-tools.sh
exec go run ./bench/compare "$@"
