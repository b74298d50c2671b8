#!/usr/bin/env bash
# Installs what the interop tier needs (vsftpd, openssh-server, openssl) and the system account the
# servers authenticate. Idempotent: installs only what is missing, refreshes the package lists only
# when an install cannot find what it needs, and leaves an existing test account as it is apart
# from resetting its password. Needs root (CI runs as root). The packaged daemons do not start on
# install here (policy-rc.d); start.sh starts private instances instead.
set -euo pipefail

TEST_USER="${SPRELAY_INTEROP_USER:-sprelaytest}"
TEST_PASSWORD="${SPRELAY_INTEROP_PASSWORD:-sprelay-interop-pw}"
PACKAGES=(vsftpd openssh-server openssl)

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: needs root (apt-get install, useradd)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  install() { apt-get install -y -q --no-install-recommends "${missing[@]}"; }
  # Stale or absent lists make the install fail (no candidate, 404): refresh once and try again.
  if ! install; then
    apt-get update -q
    install
  fi
fi

for bin in /usr/sbin/vsftpd /usr/sbin/sshd /usr/bin/openssl /usr/bin/ssh-keygen; do
  [ -x "$bin" ] || { echo "install.sh: $bin is missing after the install" >&2; exit 1; }
done

# vsftpd changes into the account's home before it applies local_root, so the home must exist;
# it holds nothing (start.sh points both servers at folders of their own run).
TEST_HOME=/var/lib/sprelay-interop
mkdir -p "$TEST_HOME"
chmod 0755 "$TEST_HOME"
if ! id -u "$TEST_USER" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir "$TEST_HOME" --shell /usr/sbin/nologin "$TEST_USER"
elif [ "$(getent passwd "$TEST_USER" | cut -d: -f6)" != "$TEST_HOME" ]; then
  usermod --home "$TEST_HOME" "$TEST_USER"
fi
echo "$TEST_USER:$TEST_PASSWORD" | chpasswd

# vsftpd's own PAM service would refuse the account (pam_shells: nologin is no login shell);
# the test instance uses this one instead: the password, and nothing else.
PAM_SERVICE=/etc/pam.d/sprelay-vsftpd
PAM_TEXT='# sprelay interop tier (scripts/interop): password check for the test vsftpd instance
auth    required  pam_unix.so
account required  pam_unix.so
session required  pam_permit.so'
if [ ! -f "$PAM_SERVICE" ] || [ "$(cat "$PAM_SERVICE")" != "$PAM_TEXT" ]; then
  printf '%s\n' "$PAM_TEXT" >"$PAM_SERVICE"
fi
echo "install.sh: ${missing[*]:-nothing to install}; user $TEST_USER ready"
