#!/usr/bin/env bash
# Stops the servers start.sh started in DIR: each by the pid in its pid file, with its session
# (start.sh runs each server as a session leader, so the per-connection children go too).
set -uo pipefail

DIR="${1:?usage: stop.sh DIR}"
for name in vsftpd sshd; do
  pidfile="$DIR/$name.pid"
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
done
exit 0
