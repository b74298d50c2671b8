#!/usr/bin/env bash
# Starts the e-mail interop tier's servers into DIR, on 127.0.0.1 high ports only:
#   - a throwaway CA (DIR/ca.pem) signing one server certificate for localhost / 127.0.0.1, and an
#     unrelated CA (DIR/other-ca.pem) that signed nothing here;
#   - a dovecot instance of its own (`dovecot -F -c DIR/dovecot/dovecot.conf`): IMAP with STARTTLS
#     and IMAP over implicit TLS, LMTP for postfix's deliveries, SASL for postfix's AUTH, users
#     from a passwd-file (`office`: the office mailbox; `azs017`: the station's SMTP login),
#     Maildirs under DIR/mail;
#   - a postfix instance of its own (`postfix -c DIR/postfix`): a submission-like smtpd (STARTTLS
#     required, AUTH via dovecot, only authenticated clients may send) that delivers everything for
#     example.com into dovecot over LMTP; every other destination goes to the `error` transport, so
#     nothing can leave the machine. Queue, data and log under DIR.
# Writes DIR/mail.env (KEY=VALUE lines) and DIR/dovecot.pid; mail-down.sh DIR stops both.
# Run mail-install.sh first (as root).
set -euo pipefail

DIR="${1:?usage: mail-up.sh DIR}"
OFFICE_PASSWORD="${SPRELAY_MAIL_OFFICE_PASSWORD:-office-interop-pw}"
STATION_PASSWORD="${SPRELAY_MAIL_STATION_PASSWORD:-azs017-interop-pw}"
DOMAIN=example.com
started_ns=$(date +%s%N)

starting=0
fail() {
  echo "mail-up.sh: $*" >&2
  for log in "$DIR/dovecot.log" "$DIR/dovecot.out" "$DIR/postfix.log" "$DIR/postfix.out" "$DIR/openssl.log"; do
    [ -s "$log" ] && { echo "---- $log" >&2; tail -n 30 "$log" >&2; }
  done
  # whatever this run started is stopped again; DIR (logs) stays for a look
  [ "$starting" = 1 ] && bash "$(dirname "${BASH_SOURCE[0]}")/mail-down.sh" "$DIR" >/dev/null 2>&1
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (postfix and dovecot drop privileges to their own accounts)"
for bin in /usr/sbin/postfix /usr/sbin/postconf /usr/sbin/dovecot openssl node; do
  command -v "$bin" >/dev/null || fail "$bin is missing: run scripts/interop/mail-install.sh first"
done
MAIL_UID="$(id -u mail)" || fail "no system account mail"
MAIL_GID="$(id -g mail)"

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
# postfix's and dovecot's unprivileged processes reach their folders through DIR
chmod 0755 "$DIR"
[ ! -e "$DIR/mail.env" ] || fail "$DIR already holds a running tier (mail.env): run mail-down.sh $DIR first"
# every folder above DIR must be searchable by the servers' accounts (mktemp -d makes 0700 ones)
for account in postfix dovecot mail; do
  runuser -u "$account" -- test -x "$DIR" \
    || fail "$account cannot reach $DIR: a folder above it is not searchable by others (chmod o+x it)"
done
starting=1

# ---- ports: five free ones (below Linux's ephemeral range, 32768+) ---------------------------------
read -r SMTP_PORT IMAP_PORT IMAPS_PORT LMTP_PORT AUTH_PORT < <(node -e '
const net = require("node:net");
const free = (port) => new Promise((resolve) => {
  const s = net.createServer().once("error", () => resolve(false));
  s.listen({ host: "127.0.0.1", port, exclusive: true }, () => s.close(() => resolve(true)));
});
(async () => {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 12000);
    const ports = [0, 1, 2, 3, 4].map((i) => base + i);
    let ok = true;
    for (const p of ports) if (!(await free(p))) { ok = false; break; }
    if (ok) return console.log(ports.join(" "));
  }
  process.exit(1);
})();
') || fail "no free ports found"

# ---- TLS ----------------------------------------------------------------------------------------------
ssl() { openssl "$@" >>"$DIR/openssl.log" 2>&1 || fail "openssl $1 failed (see $DIR/openssl.log)"; }
EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
ssl req -x509 "${EC[@]}" -days 2 -subj "/CN=sprelay mail interop CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$DIR/ca.key" -out "$DIR/ca.pem"
ssl req -new "${EC[@]}" -subj "/CN=localhost" -keyout "$DIR/server.key" -out "$DIR/server.csr"
printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
  'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >"$DIR/server.ext"
ssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
  -days 2 -extfile "$DIR/server.ext" -out "$DIR/server.pem"
ssl req -x509 "${EC[@]}" -days 2 -subj "/CN=sprelay mail interop other CA" \
  -addext basicConstraints=critical,CA:TRUE -keyout "$DIR/other-ca.key" -out "$DIR/other-ca.pem"
chmod 0600 "$DIR"/*.key # read by root before the servers drop privileges

# ---- dovecot --------------------------------------------------------------------------------------------
DC="$DIR/dovecot"
mkdir -p "$DC/run" "$DC/state" "$DIR/mail"
chown "$MAIL_UID:$MAIL_GID" "$DIR/mail"
chmod 0750 "$DIR/mail"
# {PLAIN} keeps the test readable; dovecot's auth worker reads the file as the dovecot account
printf '%s\n' "office:{PLAIN}$OFFICE_PASSWORD" "azs017:{PLAIN}$STATION_PASSWORD" >"$DC/users"
chown root:dovecot "$DC/users"
chmod 0640 "$DC/users"

cat >"$DC/dovecot.conf" <<CONF
# sprelay e-mail interop tier: a private dovecot instance (scripts/interop/mail-up.sh)
base_dir = $DC/run
state_dir = $DC/state
instance_name = sprelay-interop-$$
log_path = $DIR/dovecot.log
info_log_path = $DIR/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
# required: no plaintext LOGIN or AUTH without TLS, not even from loopback
ssl = required
ssl_cert = <$DIR/server.pem
ssl_key = <$DIR/server.key
ssl_min_protocol = TLSv1.2
# no LOGIN before TLS, loopback included
disable_plaintext_auth = yes
auth_mechanisms = plain login
# RCPT office@example.com over LMTP and LOGIN office over IMAP are the same user
auth_username_format = %Ln
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $DC/users
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$DIR/mail/%n
}
first_valid_uid = $MAIL_UID
last_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID
last_valid_gid = $MAIL_GID
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
mail_plugins =
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
# postfix's smtpd asks this listener to check the station's AUTH
service auth {
  inet_listener {
    address = 127.0.0.1
    port = $AUTH_PORT
  }
}
# no growing per-IP penalty for failed logins (every client here is 127.0.0.1, and the wrong-password
# cases would otherwise slow down every later run against this instance up to 15 s per login);
# each failed login is still answered after auth_failure_delay (2 s), as on a real server
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
lmtp_save_to_detail_mailbox = no
recipient_delimiter =
CONF

/usr/sbin/dovecot -c "$DC/dovecot.conf" -n >"$DC/dovecot.effective.conf" 2>"$DIR/dovecot.out" \
  || fail "dovecot refuses its config"
setsid /usr/sbin/dovecot -F -c "$DC/dovecot.conf" >>"$DIR/dovecot.out" 2>&1 </dev/null &
echo $! >"$DIR/dovecot.pid"

# ---- postfix ------------------------------------------------------------------------------------------
PF="$DIR/postfix"
mkdir -p "$PF" "$DIR/postfix-queue" "$DIR/postfix-data"
chown postfix:root "$DIR/postfix-data"
chmod 0700 "$DIR/postfix-data"

cat >"$PF/main.cf" <<CONF
# sprelay e-mail interop tier: a private postfix instance (scripts/interop/mail-up.sh)
compatibility_level = 3.6
queue_directory = $DIR/postfix-queue
data_directory = $DIR/postfix-data
# postfix logs to syslog by default (none here); its own file must be under an allowed prefix
maillog_file_prefixes = $DIR
maillog_file = $DIR/postfix.log
myhostname = mx.$DOMAIN
mydomain = $DOMAIN
myorigin = $DOMAIN
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
# every message for the test domain goes to dovecot over LMTP; nothing ever leaves the machine
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = inline:{ office@$DOMAIN=ok, azs017@$DOMAIN=ok }
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
default_transport = error:sprelay interop: no mail leaves this machine
relay_transport = error:sprelay interop: no mail leaves this machine
relayhost =
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
# submission: TLS required before anything, AUTH through dovecot, only authenticated clients send
smtpd_tls_cert_file = $DIR/server.pem
smtpd_tls_key_file = $DIR/server.key
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:$AUTH_PORT
smtpd_client_restrictions = permit_sasl_authenticated, reject
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_sender_login_maps = inline:{ azs017@$DOMAIN=azs017, office@$DOMAIN=office }
smtpd_sender_restrictions = reject_sender_login_mismatch
smtpd_helo_required = yes
message_size_limit = 52428800
# keep a delivery failure visible and quick instead of retrying for days
maximal_queue_lifetime = 10m
bounce_queue_lifetime = 10m
queue_run_delay = 10s
minimal_backoff_time = 10s
maximal_backoff_time = 30s
notify_classes =
CONF

cat >"$PF/master.cf" <<CONF
# sprelay e-mail interop tier: the services this postfix instance needs, none chrooted
# service              type  private unpriv chroot wakeup maxproc command
127.0.0.1:$SMTP_PORT   inet  n       -      n      -      -       smtpd
pickup                 unix  n       -      n      60     1       pickup
cleanup                unix  n       -      n      -      0       cleanup
qmgr                   unix  n       -      n      300    1       qmgr
tlsmgr                 unix  -       -      n      1000?  1       tlsmgr
rewrite                unix  -       -      n      -      -       trivial-rewrite
bounce                 unix  -       -      n      -      0       bounce
defer                  unix  -       -      n      -      0       bounce
trace                  unix  -       -      n      -      0       bounce
verify                 unix  -       -      n      -      1       verify
flush                  unix  n       -      n      1000?  0       flush
proxymap               unix  -       -      n      -      -       proxymap
showq                  unix  n       -      n      -      -       showq
error                  unix  -       -      n      -      -       error
retry                  unix  -       -      n      -      -       error
discard                unix  -       -      n      -      -       discard
lmtp                   unix  -       -      n      -      -       lmtp
anvil                  unix  -       -      n      -      1       anvil
scache                 unix  -       -      n      -      1       scache
postlog                unix-dgram n  -      n      -      1       postlogd
CONF

postfix -c "$PF" check >>"$DIR/postfix.out" 2>&1 || fail "postfix -c $PF check failed"
postfix -c "$PF" start >>"$DIR/postfix.out" 2>&1 || fail "postfix -c $PF start failed"

# ---- ready: every listener answers with its greeting ------------------------------------------------
greets() { # port, expected start of the greeting
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && IFS= read -r -t 1 line <&3 && [[ \$line == $2* ]]" 2>/dev/null
}
deadline=$(($(date +%s) + 20))
for check in "$IMAP_PORT:* OK" "$LMTP_PORT:220" "$SMTP_PORT:220" "$AUTH_PORT:VERSION"; do
  until greets "${check%%:*}" "${check#*:}"; do
    kill -0 "$(cat "$DIR/dovecot.pid")" 2>/dev/null || fail "dovecot exited"
    [ "$(date +%s)" -lt "$deadline" ] || fail "no greeting on 127.0.0.1:${check%%:*} (${check#*:}) within 20 s"
    sleep 0.05
  done
done
timeout 5 openssl s_client -connect "127.0.0.1:$IMAPS_PORT" -CAfile "$DIR/ca.pem" -verify_return_error -brief \
  </dev/null >>"$DIR/openssl.log" 2>&1 || fail "no TLS with a certificate of DIR/ca.pem on 127.0.0.1:$IMAPS_PORT"

cat >"$DIR/mail.env" <<ENV
DIR=$DIR
MAIL_DOMAIN=$DOMAIN
SMTP_HOST=127.0.0.1
SMTP_PORT=$SMTP_PORT
IMAP_HOST=127.0.0.1
IMAP_PORT=$IMAP_PORT
IMAPS_PORT=$IMAPS_PORT
LMTP_PORT=$LMTP_PORT
AUTH_PORT=$AUTH_PORT
OFFICE_USER=office
OFFICE_PASSWORD=$OFFICE_PASSWORD
OFFICE_ADDRESS=office@$DOMAIN
STATION_USER=azs017
STATION_PASSWORD=$STATION_PASSWORD
STATION_ADDRESS=azs017@$DOMAIN
CA=$DIR/ca.pem
OTHER_CA=$DIR/other-ca.pem
MAILDIR_ROOT=$DIR/mail
POSTFIX_CONFIG=$PF
POSTFIX_LOG=$DIR/postfix.log
DOVECOT_LOG=$DIR/dovecot.log
ENV
echo "mail-up.sh: smtp 127.0.0.1:$SMTP_PORT (STARTTLS+AUTH), imap :$IMAP_PORT (STARTTLS), imaps :$IMAPS_PORT," \
  "lmtp :$LMTP_PORT, auth :$AUTH_PORT; up in $((($(date +%s%N) - started_ns) / 1000000)) ms; env in $DIR/mail.env"
