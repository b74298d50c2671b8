#!/usr/bin/env bash
# The ledger (with receipts), pipeline, CLI, office fleet and lan kill -9 suites again on the other ledger driver: Node's built-in
# node:sqlite, under Node 22 for Linux from the npm registry (the portable Windows bundle runs on it).
# Usage: bash scripts/tools/test-node-sqlite.sh [substring...]   (default: the suites named below)
set -euo pipefail
cd "$(dirname "$0")/../.."
node22="$(scripts/tools/fetch-node.sh linux)"
npm run --silent build   # the CLI tests run bin/sprelay.js, which runs dist/
[ "$#" -gt 0 ] || set -- test/ledger.test test/ledger-control.test test/pipeline.test test/cli.test test/halfwritten.test test/diskfull.test test/fleet-office.test test/stress/crash.test
echo "node:sqlite tier: $("$node22" --version), SPRELAY_LEDGER_DRIVER=node:sqlite: $*"
# scripts that call a bare `node` (resend-failed.sh) get the same Node 22
export PATH="$(dirname "$node22"):$PATH"
SPRELAY_LEDGER_DRIVER=node:sqlite exec "$node22" scripts/run-tests.mjs "$@"
