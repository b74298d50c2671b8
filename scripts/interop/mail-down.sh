#!/usr/bin/env bash
# Stops what mail-up.sh DIR started: the postfix instance (postfix -c DIR/postfix stop) and the
# dovecot instance (by the pid in DIR/dovecot.pid). Safe to run twice, or after a failed start.
# Leaves DIR (logs, mailboxes) to the caller.
set -uo pipefail

DIR="${1:?usage: mail-down.sh DIR}"
[ -d "$DIR" ] || exit 0
DIR="$(cd "$DIR" && pwd)"
status=0

if [ -f "$DIR/postfix/main.cf" ] && [ -f "$DIR/postfix-queue/pid/master.pid" ]; then
  if postfix -c "$DIR/postfix" status >/dev/null 2>&1; then
    postfix -c "$DIR/postfix" stop >>"$DIR/postfix.out" 2>&1 || {
      echo "mail-down.sh: postfix -c $DIR/postfix stop failed" >&2
      status=1
    }
  fi
fi

if [ -f "$DIR/dovecot.pid" ]; then
  pid="$(cat "$DIR/dovecot.pid")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "mail-down.sh: dovecot ($pid) did not stop within 5 s, killing its process group" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
      status=1
    fi
  fi
  rm -f "$DIR/dovecot.pid"
fi
rm -f "$DIR/mail.env"
exit "$status"
