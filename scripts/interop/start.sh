#!/usr/bin/env bash
# Starts the interop tier's servers into DIR, on 127.0.0.1 high ports only:
#   - vsftpd with explicit TLS (AUTH TLS required for login and data), a certificate signed by a
#     throwaway CA made here (DIR/ca.pem), a fixed passive port range, the test user chrooted to
#     DIR/ftp;
#   - an OpenSSH sshd of its own (own config and host key) serving internal-sftp only, password
#     and public-key auth for the test user, starting in DIR/sftp.
# Writes DIR/env (KEY=VALUE lines: ports, user, password, roots, CA, host key fingerprint) and a
# pid file per server; stop.sh DIR stops them. Run install.sh first (as root).
set -euo pipefail

DIR="${1:?usage: start.sh DIR}"
TEST_USER="${SPRELAY_INTEROP_USER:-sprelaytest}"
TEST_PASSWORD="${SPRELAY_INTEROP_PASSWORD:-sprelay-interop-pw}"
PASV_COUNT=20

fail() {
  echo "start.sh: $*" >&2
  for log in "$DIR/vsftpd.log" "$DIR/vsftpd.out" "$DIR/sshd.log"; do
    [ -s "$log" ] && { echo "---- $log" >&2; tail -n 30 "$log" >&2; }
  done
  exit 1
}

[ "$(id -u)" -eq 0 ] || fail "needs root (the servers authenticate a system account)"
id -u "$TEST_USER" >/dev/null 2>&1 || fail "no user $TEST_USER: run scripts/interop/install.sh first"
[ -f /etc/pam.d/sprelay-vsftpd ] || fail "no /etc/pam.d/sprelay-vsftpd: run scripts/interop/install.sh first"
for bin in /usr/sbin/vsftpd /usr/sbin/sshd openssl ssh-keygen node; do
  command -v "$bin" >/dev/null || fail "$bin is missing: run scripts/interop/install.sh first"
done

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
chmod 0755 "$DIR" # the servers' unprivileged processes reach DIR/ftp and DIR/sftp through it
TEST_UID="$(id -u "$TEST_USER")"
TEST_GID="$(id -g "$TEST_USER")"

# ---- ports: control ports and a run of PASV_COUNT consecutive passive ports, all free ----------
# (below Linux's ephemeral range, 32768+, so no outgoing connection takes one meanwhile)
read -r FTP_PORT SSH_PORT PASV_MIN PASV_MAX < <(node -e '
const net = require("node:net");
const count = Number(process.argv[1]);
const free = (port) => new Promise((resolve) => {
  const s = net.createServer().once("error", () => resolve(false));
  s.listen({ host: "127.0.0.1", port, exclusive: true }, () => s.close(() => resolve(true)));
});
(async () => {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 12000);
    const ports = Array.from({ length: count + 2 }, (_, i) => base + i);
    let ok = true;
    for (const p of ports) if (!(await free(p))) { ok = false; break; }
    if (ok) return console.log(ports[0], ports[1], ports[2], ports[count + 1]);
  }
  process.exit(1);
})();
' "$PASV_COUNT") || fail "no free ports found"

# ---- TLS: a throwaway CA, a server certificate for localhost / 127.0.0.1, and an unrelated CA ----
ssl() { openssl "$@" >>"$DIR/openssl.log" 2>&1 || fail "openssl $1 failed (see $DIR/openssl.log)"; }
ssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sprelay interop CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$DIR/ca.key" -out "$DIR/ca.pem"
ssl req -new -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$DIR/server.key" -out "$DIR/server.csr"
printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1' 'basicConstraints=CA:FALSE' \
  'keyUsage=critical,digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >"$DIR/server.ext"
ssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
  -days 2 -extfile "$DIR/server.ext" -out "$DIR/server.pem"
# a CA that signed nothing here: trusting it instead of ca.pem must fail
ssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=sprelay interop other CA" \
  -addext basicConstraints=critical,CA:TRUE -keyout "$DIR/other-ca.key" -out "$DIR/other-ca.pem"
chmod 0600 "$DIR"/*.key

# ---- folders ---------------------------------------------------------------------------------------
FTP_ROOT="$DIR/ftp"
SFTP_ROOT="$DIR/sftp"
mkdir -p "$FTP_ROOT" "$SFTP_ROOT" "$DIR/empty"
chown "$TEST_UID:$TEST_GID" "$FTP_ROOT" "$SFTP_ROOT"
chmod 0755 "$FTP_ROOT" "$SFTP_ROOT" "$DIR/empty"

# ---- vsftpd ------------------------------------------------------------------------------------------
cat >"$DIR/vsftpd.conf" <<CONF
# sprelay interop tier: a private vsftpd instance (scripts/interop/start.sh)
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$FTP_PORT
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
file_open_mode=0644
chroot_local_user=YES
allow_writeable_chroot=YES
local_root=$FTP_ROOT
userlist_enable=NO
pam_service_name=sprelay-vsftpd
secure_chroot_dir=$DIR/empty
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$PASV_MIN
pasv_max_port=$PASV_MAX
port_enable=NO
ssl_enable=YES
allow_anon_ssl=NO
force_local_logins_ssl=YES
force_local_data_ssl=YES
rsa_cert_file=$DIR/server.pem
rsa_private_key_file=$DIR/server.key
ssl_ciphers=HIGH
utf8_filesystem=YES
xferlog_enable=YES
xferlog_std_format=NO
log_ftp_protocol=YES
vsftpd_log_file=$DIR/vsftpd.log
idle_session_timeout=120
data_connection_timeout=60
max_per_ip=50
CONF

setsid /usr/sbin/vsftpd "$DIR/vsftpd.conf" >"$DIR/vsftpd.out" 2>&1 </dev/null &
echo $! >"$DIR/vsftpd.pid"

# ---- sshd --------------------------------------------------------------------------------------------
mkdir -p /run/sshd
chmod 0755 /run/sshd
ssh-keygen -q -t ed25519 -N '' -C 'sprelay interop host key' -f "$DIR/ssh_host_ed25519_key"
ssh-keygen -q -t ed25519 -N '' -C 'sprelay interop client key' -f "$DIR/client_key"
cp "$DIR/client_key.pub" "$DIR/authorized_keys"
chmod 0644 "$DIR/authorized_keys"
HOST_KEY_FINGERPRINT="$(ssh-keygen -lf "$DIR/ssh_host_ed25519_key.pub" | awk '{print $2}')"
case "$HOST_KEY_FINGERPRINT" in SHA256:*) ;; *) fail "unexpected fingerprint: $HOST_KEY_FINGERPRINT" ;; esac

cat >"$DIR/sshd_config" <<CONF
# sprelay interop tier: a private sshd serving internal-sftp only (scripts/interop/start.sh)
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $DIR/ssh_host_ed25519_key
PidFile $DIR/sshd.pid.own
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers $TEST_USER
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile $DIR/authorized_keys
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
LoginGraceTime 30
MaxStartups 50:30:100
LogLevel VERBOSE
Subsystem sftp internal-sftp
ForceCommand internal-sftp -d $SFTP_ROOT
CONF
/usr/sbin/sshd -t -f "$DIR/sshd_config" 2>"$DIR/sshd.log" || fail "sshd refuses its config"
setsid /usr/sbin/sshd -D -e -f "$DIR/sshd_config" >>"$DIR/sshd.log" 2>&1 </dev/null &
echo $! >"$DIR/sshd.pid"

# ---- ready? ------------------------------------------------------------------------------------------
ready() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for name_port in "vsftpd:$FTP_PORT" "sshd:$SSH_PORT"; do
  name="${name_port%%:*}" port="${name_port##*:}"
  for _ in $(seq 1 100); do
    ready "$port" && continue 2
    kill -0 "$(cat "$DIR/$name.pid")" 2>/dev/null || fail "$name exited at start"
    sleep 0.1
  done
  fail "$name does not listen on 127.0.0.1:$port"
done

cat >"$DIR/env" <<ENV
SPRELAY_INTEROP_DIR=$DIR
FTP_HOST=127.0.0.1
FTP_PORT=$FTP_PORT
FTP_PASV_MIN=$PASV_MIN
FTP_PASV_MAX=$PASV_MAX
FTP_ROOT=$FTP_ROOT
SFTP_HOST=127.0.0.1
SFTP_PORT=$SSH_PORT
SFTP_ROOT=$SFTP_ROOT
SFTP_HOST_KEY=$HOST_KEY_FINGERPRINT
SFTP_CLIENT_KEY=$DIR/client_key
SSHD_LOG=$DIR/sshd.log
VSFTPD_LOG=$DIR/vsftpd.log
TEST_USER=$TEST_USER
TEST_PASSWORD=$TEST_PASSWORD
TEST_UID=$TEST_UID
TEST_GID=$TEST_GID
CA_PEM=$DIR/ca.pem
OTHER_CA_PEM=$DIR/other-ca.pem
ENV
echo "start.sh: vsftpd on 127.0.0.1:$FTP_PORT (passive $PASV_MIN-$PASV_MAX), sshd on 127.0.0.1:$SSH_PORT; env in $DIR/env"
