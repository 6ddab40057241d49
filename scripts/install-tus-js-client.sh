#!/bin/sh
# Installs the pinned tus-js-client (e2e/tusjs/package-lock.json) into
# e2e/tusjs/node_modules for the end-to-end test TestTusJSClient.
# Needs node and npm; uses only the npm registry.
set -eu
dir="$(cd "$(dirname "$0")/../e2e/tusjs" && pwd)"
command -v node >/dev/null 2>&1 || { echo "install-tus-js-client: node is not installed" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "install-tus-js-client: npm is not installed" >&2; exit 1; }
cd "$dir"
npm ci --ignore-scripts --no-audit --no-fund
node -e 'import("tus-js-client").then(m => console.log("tus-js-client ready:", typeof m.Upload === "function"))'
