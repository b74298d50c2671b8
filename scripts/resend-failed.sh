#!/bin/sh
# For station staff: queue every failed or dead package again, send now, and show the status.
# Usage: scripts/resend-failed.sh [path/to/sprelay.yaml]
# (config: the argument, else $SPRELAY_CONFIG, else sprelay.yaml in the sprelay folder)
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
config=${1:-${SPRELAY_CONFIG:-$here/sprelay.yaml}}
sprelay() { node "$here/bin/sprelay.js" --config "$config" "$@"; }

sprelay resend --failed || exit $?
sprelay once
rc=$?
sprelay status
exit $rc
