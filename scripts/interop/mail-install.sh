#!/usr/bin/env bash
# Installs what the e-mail interop tier needs: postfix (the MTA the station submits to), dovecot
# (IMAP for the office mailbox, LMTP for postfix's deliveries, SASL for postfix's AUTH) and openssl.
# Idempotent: installs only what is missing and refreshes the package lists only when an install
# cannot find what it needs. postfix is preseeded with "No configuration", so it writes no system
# main.cf and asks nothing; the packaged daemons do not start on install here (policy-rc.d), and
# mail-up.sh starts private instances instead. Needs root (CI runs as root).
set -euo pipefail

PACKAGES=(postfix dovecot-core dovecot-imapd dovecot-lmtpd openssl)

if [ "$(id -u)" -ne 0 ]; then
  echo "mail-install.sh: needs root (apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  install() { apt-get install -y -q --no-install-recommends "${missing[@]}"; }
  # Stale or absent lists make the install fail (no candidate, 404): refresh once and try again.
  if ! install; then
    apt-get update -q
    install
  fi
fi

for bin in /usr/sbin/postfix /usr/sbin/postconf /usr/sbin/dovecot /usr/lib/dovecot/lmtp /usr/lib/dovecot/imap /usr/bin/openssl; do
  [ -x "$bin" ] || { echo "mail-install.sh: $bin is missing after the install" >&2; exit 1; }
done
for account in postfix dovecot dovenull mail; do
  id -u "$account" >/dev/null 2>&1 || { echo "mail-install.sh: no system account $account" >&2; exit 1; }
done
getent group postdrop >/dev/null || { echo "mail-install.sh: no group postdrop" >&2; exit 1; }
echo "mail-install.sh: ${missing[*]:-nothing to install}; postfix $(postconf -d -h mail_version 2>/dev/null), dovecot $(dovecot --version | cut -d' ' -f1)"
