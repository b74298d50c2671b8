#!/bin/sh
# For station staff: queue every failed or dead package again, send now, show the status and end
# with a verdict in plain words ("All sent and received." / "... not sent: call IT and say #17").
# Usage: scripts/resend-failed.sh [path/to/sprelay.yaml]
# Config: the argument, else $SPRELAY_CONFIG, else sprelay.yaml beside the app folder (the README's
# layout: /opt/sprelay/sprelay.yaml next to /opt/sprelay/app), else sprelay.yaml in the app folder.
# Node: $SPRELAY_NODE, else `node` on PATH. Exit code: that of `once` (0 ok, 2 attention, 1 error).
set -u
app=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${1:-}" ]; then config=$1
elif [ -n "${SPRELAY_CONFIG:-}" ]; then config=$SPRELAY_CONFIG
elif [ -f "$(dirname "$app")/sprelay.yaml" ]; then config=$(dirname "$app")/sprelay.yaml
else config=$app/sprelay.yaml
fi
node=${SPRELAY_NODE:-node}
sprelay() { "$node" "$app/bin/sprelay.js" --config "$config" "$@"; }

if ! sprelay resend --failed; then
  echo
  echo "RESULT: ERROR - the failed packages could not be queued again (see above). Call IT support."
  exit 1
fi
sprelay once
rc=$?
sprelay status
echo
if [ "$rc" = 0 ] || [ "$rc" = 2 ]; then sprelay status --brief; else echo "RESULT: ERROR - sprelay could not run (exit code $rc). Call IT support."; fi
exit $rc
