#!/usr/bin/env bash
# CI proof of the portable Windows bundle (issue 7, part 3): builds release/sprelay-win-x64.zip
# (npm run bundle:win), unpacks it with an independent reader (Python's zipfile) into a fresh folder
# whose name has a space and Cyrillic letters, and under Wine, with nothing but the zip's own node.exe:
# --version (ledger on node:sqlite, no better-sqlite3 anywhere), init, the shipped sprelay.yaml edited as
# a station's IT support would (lan profile to a folder standing for the office share), one cycle with a
# Cyrillic windows-1251 package and a SERVIO name with spaces out and a package in, status, exit codes
# passed through sprelay.cmd, an outage of the share, resend-failed.cmd for a failed package, install-task.cmd.
# Ends with "bundle: N passed, M failed"; exits 1 on a failure.
#   bash scripts/windows/bundle-smoke.sh          (as root in CI: wine-env.sh installs wine with apt)
# Wine caveat: Node's stdout/stderr must be files, not Linux pipes (EBADF), so every run under Wine
# writes to files and the checks read those.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
started=$(date +%s)
passed=0
failed=0
ok() {
  echo "ok - $1"
  passed=$((passed + 1))
}
bad() {
  echo "not ok - $1"
  failed=$((failed + 1))
}
finish() {
  echo "bundle smoke: $(($(date +%s) - started)) s; outputs in $work (kept on a failure or with SPRELAY_KEEP=1)"
  echo "bundle: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] || exit 1
  [ -n "${SPRELAY_KEEP:-}" ] || rm -rf "$work"
  exit 0
}
work="$(mktemp -d "${TMPDIR:-/tmp}/sprelay-bundle-smoke.XXXXXX")"

# ---- build and unpack ---------------------------------------------------------------------------------
t0=$(date +%s)
if npm run --silent bundle:win >"$work/bundle.log" 2>&1; then
  ok "npm run bundle:win ($(($(date +%s) - t0)) s): $(grep -o 'sprelay-win-x64.zip: .*' "$work/bundle.log")"
else
  cat "$work/bundle.log"
  bad "npm run bundle:win"
  finish
fi
zip="$root/release/sprelay-win-x64.zip"
# a second build from the same sources makes the same bytes (entries sorted, one timestamp)
sum1=$(sha256sum "$zip" | cut -c1-64)
if node scripts/bundle-win.mjs >"$work/bundle2.log" 2>&1 && [ "$(sha256sum "$zip" | cut -c1-64)" = "$sum1" ]; then
  ok "a second build writes a byte-identical zip"
else
  cat "$work/bundle2.log"
  bad "a second build writes a byte-identical zip"
fi

python3 - "$zip" >"$work/zipcheck.txt" 2>&1 <<'EOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
want = ['README-station.txt', 'THIRD-PARTY-LICENSES.txt', 'app/install-task.mjs', 'app/node.exe',
        'app/sprelay.mjs', 'app/task-xml.mjs', 'install-task.cmd', 'resend-failed.cmd',
        'sprelay-task.xml', 'sprelay.cmd', 'sprelay.yaml']
problems = []
if names != want: problems.append(f'entries {names}, expected {want}')
if z.testzip() is not None: problems.append('CRC error')
for n in names:
    data = z.read(n)
    if n.endswith(('.cmd', '.txt', '.yaml')):
        if b'\n' in data.replace(b'\r\n', b''): problems.append(f'{n}: a line end is not CRLF')
    if n.endswith('.cmd') and any(b > 0x7f for b in data): problems.append(f'{n}: not ASCII')
    if n.endswith('.xml') and b'\n' in data.decode('utf-16').encode().replace(b'\r\n', b''):
        problems.append(f'{n}: a line end is not CRLF')
    if 'better-sqlite3' in n or n.endswith('.node'): problems.append(f'{n}: a native addon in the zip')
print('; '.join(problems) or 'ok')
EOF
if [ "$(cat "$work/zipcheck.txt")" = ok ]; then ok "zip: the expected 11 entries, sorted, CRLF text, ASCII .cmd, no native addon"; else bad "zip: $(cat "$work/zipcheck.txt")"; fi

bundle="$work/АЗС 017 sprelay"
mkdir -p "$bundle"
if python3 -m zipfile -e "$zip" "$bundle" && [ -f "$bundle/sprelay.cmd" ] && [ -f "$bundle/app/node.exe" ]; then
  ok "unpacked by python3 -m zipfile into \"$(basename "$bundle")\""
else
  bad "unpacked by python3 -m zipfile"
  finish
fi
if find "$bundle" "$work" -iname '*better-sqlite3*' -o -iname '*.node' | grep -q .; then bad "no better-sqlite3 near the bundle"; else ok "no better-sqlite3 and no .node file in or around the bundle folder"; fi

# ---- Wine ------------------------------------------------------------------------------------------------
# shellcheck source=scripts/windows/wine-env.sh
. "$root/scripts/windows/wine-env.sh" || {
  bad "wine environment"
  finish
}
export LANG=C.UTF-8 # Wine maps Unix names to Windows ones in the locale's charset: Cyrillic needs UTF-8
winpath() { printf 'Z:%s' "$1" | tr / '\\'; }
unset SPRELAY_CONFIG SPRELAY_LEDGER_DRIVER
export SPRELAY_NO_PAUSE=1 # resend-failed.cmd and install-task.cmd: no pause at the end

# run ARGS...: `cmd /c ARGS` under Wine in the bundle folder; stdout in $out, stderr in $err, exit in $rc.
# Wine itself at times fails to start a program when the machine is busy ("ShellExecuteEx failed:
# Internal error", nothing of ours ran): that is retried, said, and is no result of the bundle.
n=0
run() {
  local try
  n=$((n + 1))
  out="$work/run$n.out"
  err="$work/run$n.err"
  for try in 1 2 3; do
    (cd "$bundle" && timeout 180 "$WINE" cmd /c "$@" >"$out" 2>"$err" </dev/null)
    rc=$?
    grep -q "ShellExecuteEx failed" "$out" "$err" || return 0
    echo "# Wine could not start a program (ShellExecuteEx failed) at try $try of: $*"
  done
}
expect_rc() { # expect_rc WANT NAME
  if [ "$rc" = "$1" ]; then
    ok "$2: exit $rc"
  else
    bad "$2: exit $rc, expected $1"
    sed 's/^/    | /' "$out" "$err" | tail -20
  fi
}
has() { # has FILE TEXT NAME
  if grep -qF -- "$2" "$1"; then ok "$3"; else
    bad "$3 (no \"$2\" in $(basename "$1"))"
    sed 's/^/    | /' "$1" | tail -20
  fi
}

run sprelay.cmd --version
expect_rc 0 "sprelay.cmd --version"
has "$out" "ledger driver: node:sqlite" "--version: the ledger runs on node:sqlite"
has "$out" "win32-x64" "--version: node.exe runs as win32-x64"

# init: a demo setup in a new folder; next to the shipped sprelay.yaml, init refuses to overwrite it
run sprelay.cmd init demo
expect_rc 0 "sprelay.cmd init demo"
if [ -f "$bundle/demo/sprelay.yaml" ] && [ -d "$bundle/demo/outbox" ]; then ok "init wrote demo\\sprelay.yaml and its folders"; else bad "init wrote demo\\sprelay.yaml and its folders"; fi
run sprelay.cmd --config 'demo\sprelay.yaml' check
expect_rc 0 "sprelay.cmd --config demo\\sprelay.yaml check"
shipped_sum=$(sha256sum "$bundle/sprelay.yaml")
run sprelay.cmd init
expect_rc 1 "sprelay.cmd init beside the shipped sprelay.yaml (refused)"
if [ "$(sha256sum "$bundle/sprelay.yaml")" = "$shipped_sum" ]; then ok "the shipped sprelay.yaml is left as it was"; else bad "the shipped sprelay.yaml is left as it was"; fi

# the shipped sprelay.yaml as IT support edits it: share, folders, station; saved with a BOM (Notepad)
station_dir="$work/ServioPump"
share="$work/office share"
mkdir -p "$station_dir/Export" "$station_dir/Import" "$share/out/AZS-017"
python3 - "$bundle/sprelay.yaml" "$(winpath "$share")" "$(winpath "$station_dir")" <<'EOF' || bad "edit the shipped sprelay.yaml"
import sys
path, share, station = sys.argv[1:]
text = open(path, 'rb').read().decode('utf-8')
edits = [('station: AZS-000', 'station: AZS-017'), ('\\\\OFFICE\\exchange', share),
         ('C:\\ServioPump\\Export', station + '\\Export'), ('C:\\ServioPump\\Import', station + '\\Import'),
         ('remote: in/AZS-000', 'remote: in/AZS-017'), ('remote: out/AZS-000', 'remote: out/AZS-017')]
for a, b in edits:
    # the first occurrence: the active setting (the commented examples come later)
    if a not in text: sys.exit(f'not in the shipped sprelay.yaml: {a}')
    i = text.index(a)
    text = text[:i] + b + text[i + len(a):]
text = text.replace('# settle: 2s ', 'settle: 1s   ', 1)
open(path, 'wb').write(b'\xef\xbb\xbf' + text.encode('utf-8'))
EOF
run sprelay.cmd check
expect_rc 0 "sprelay.cmd check (the shipped config, edited)"
has "$out" "config $(winpath "$bundle")\\sprelay.yaml: ok" "check: sprelay.yaml beside sprelay.cmd is the default config"

# packages: a SERVIO name with spaces, a Cyrillic windows-1251 package out; one package in from the office
node --input-type=module - "$station_dir/Export" "$share/out/AZS-017" "$work/expected" <<'EOF'
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cp1251 } from './scripts/samples.mjs';
const [outbox, officeOut, expected] = process.argv.slice(2);
const cds = (rows) =>
  `<?xml version="1.0" standalone="yes"?><DATAPACKET Version="2.0"><METADATA><FIELDS>` +
  `<FIELD attrname="ID" fieldtype="i4"/><FIELD attrname="FUEL" fieldtype="string" WIDTH="20"/><FIELD attrname="VOLUME" fieldtype="r8"/>` +
  `</FIELDS><PARAMS/></METADATA><ROWDATA>${rows.map(([id, fuel, v]) => `<ROW ID="${id}" FUEL="${fuel}" VOLUME="${v}"/>`).join('')}</ROWDATA></DATAPACKET>\r\n`;
const files = {
  out: {
    'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML': Buffer.from(cds([[1, 'A-95', 1520.5], [2, 'DT', 980.25]])),
    'Сменный отчёт 11_05_2023.xml': Buffer.concat([
      cp1251('<?xml version="1.0" encoding="windows-1251" standalone="yes"?>'),
      cp1251(cds([[1, 'Бензин А-95', 1520.5]]).replace(/^<\?xml[^>]*\?>/, '')),
    ]),
  },
  in: { 'Цены 12_05_2023.xml': Buffer.concat([cp1251('<?xml version="1.0" encoding="windows-1251"?>'), cp1251(cds([[3, 'Дизель', 51.9]]).replace(/^<\?xml[^>]*\?>/, ''))]) },
};
for (const [dir, group] of [[outbox, 'out'], [officeOut, 'in']]) {
  mkdirSync(join(expected, group), { recursive: true });
  for (const [name, bytes] of Object.entries(files[group])) {
    writeFileSync(join(dir, name), bytes);
    writeFileSync(join(expected, group, name), bytes);
  }
}
EOF
sleep 2 # older than settle (1s)
run sprelay.cmd once
expect_rc 0 "sprelay.cmd once (lan: 2 packages out, 1 in)"
same_dir() { # same_dir EXPECTED ACTUAL: every expected file is in ACTUAL, byte-identical
  local f ok_all=0
  for f in "$1"/*; do cmp -s "$f" "$2/$(basename "$f")" || ok_all=1; done
  return $ok_all
}
if same_dir "$work/expected/out" "$share/in/AZS-017"; then ok "both packages arrived at the share byte-identical (names with spaces and Cyrillic)"; else
  bad "both packages arrived at the share byte-identical"
  ls -la "$share/in/AZS-017" 2>&1 | sed 's/^/    | /'
fi
if [ -z "$(ls -A "$station_dir/Export")" ]; then ok "the outbox is empty"; else bad "the outbox is empty: $(ls "$station_dir/Export")"; fi
if same_dir "$work/expected/in" "$station_dir/Import" && [ -z "$(ls -A "$share/out/AZS-017")" ]; then ok "the office's package was delivered into Import byte-identical and taken off the share"; else bad "the office's package was delivered into Import and taken off the share"; fi
if grep -qi "ExperimentalWarning" "$err"; then bad "no ExperimentalWarning on stderr"; else ok "no ExperimentalWarning on stderr"; fi

run sprelay.cmd status --json
expect_rc 0 "sprelay.cmd status --json"
if python3 - "$out" <<'EOF'; then ok "status: export sent 2, import delivered 1, no problems"; else bad "status: export sent 2, import delivered 1, no problems ($(head -c 600 "$out"))"; fi
import json, sys
v = json.load(open(sys.argv[1], encoding='utf-8'))
r = {x['name']: x['counts'] for x in v['routes']}
sys.exit(0 if v['station'] == 'AZS-017' and r['export'] == {'sent': 2} and r['import'] == {'delivered': 1} and v['problems'] == [] else 1)
EOF
run sprelay.cmd status
expect_rc 0 "sprelay.cmd status"
has "$out" "AZS-017" "status: the text view names the station"
run sprelay.cmd list
has "$out" "Сменный отчёт 11_05_2023.xml" "list: the Cyrillic package name reads back intact"
has "$out" "GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML" "list: the SERVIO name with spaces reads back intact"
if [ -s "$bundle/data/ledger.sqlite" ] && grep -q "sent" "$bundle/data/logs/sprelay.log" 2>/dev/null; then ok "the ledger is data\\ledger.sqlite and the log data\\logs\\sprelay.log"; else bad "the ledger is data\\ledger.sqlite and the log data\\logs\\sprelay.log"; fi

# exit codes through sprelay.cmd: 1 for a usage error, 1 for an unknown id, --config wins over the default
run sprelay.cmd list --state nonsense
expect_rc 1 "sprelay.cmd list --state nonsense"
run sprelay.cmd resend 999
expect_rc 1 "sprelay.cmd resend 999 (unknown id)"
run sprelay.cmd --config 'no such folder\sprelay.yaml' status
expect_rc 1 "sprelay.cmd --config MISSING status (--config wins over the default)"

# an outage of the share: the package waits in the spool and once exits 2 (passed through sprelay.cmd)
mv "$share" "$share.away"
printf 'not a folder' >"$share"
late1='GSMARCHIVE_3 12_05_2023 8_01_02 - 12_05_2023 9_01_02.XML'
late2='GSMARCHIVE_3 12_05_2023 9_01_02 - 12_05_2023 10_01_02.XML'
printf '<?xml version="1.0"?>\r\n<DATAPACKET Version="2.0"><ROWDATA/></DATAPACKET>\r\n' >"$work/late1.xml"
printf '<?xml version="1.0"?>\r\n<DATAPACKET Version="2.0"><ROWDATA><ROW ID="9"/></ROWDATA></DATAPACKET>\r\n' >"$work/late2.xml"
cp "$work/late1.xml" "$station_dir/Export/$late1"
sleep 2
run sprelay.cmd once --route export
expect_rc 2 "sprelay.cmd once while the share is away"
run sprelay.cmd status --json
if python3 -c 'import json,sys; v=json.load(open(sys.argv[1],encoding="utf-8")); sys.exit(0 if {r["name"]: r["counts"] for r in v["routes"]}["export"].get("queued")==1 else 1)' "$out"; then
  ok "status: the package waits, queued, while the share is away"
else
  bad "status: the package waits, queued, while the share is away ($(head -c 600 "$out"))"
fi
rm -f "$share"
mv "$share.away" "$share"

# a failed package: a different file of the same name is already at the share (overwrite: false);
# once the office has moved it away, resend-failed.cmd queues the package again and sends it at once
printf 'someone else\r\n' >"$share/in/AZS-017/$late2"
cp "$work/late2.xml" "$station_dir/Export/$late2"
sleep 2
run sprelay.cmd once --route export
expect_rc 2 "sprelay.cmd once with a name clash at the share"
run sprelay.cmd status --json
if python3 -c 'import json,sys; v=json.load(open(sys.argv[1],encoding="utf-8")); sys.exit(0 if [p["name"] for p in v["problems"] if p["state"] in ("failed","dead")]==[sys.argv[2]] else 1)' "$out" "$late2"; then
  ok "status: the clashing package is failed or dead (a clash is not retried by itself)"
else
  bad "status: the clashing package is failed or dead ($(head -c 600 "$out"))"
fi
if cmp -s "$work/late1.xml" "$share/in/AZS-017/$late1"; then ok "the package that waited out the outage was sent by the next cycle"; else bad "the package that waited out the outage was sent by the next cycle"; fi
rm -f "$share/in/AZS-017/$late2"
run resend-failed.cmd
expect_rc 0 "resend-failed.cmd after the clash is cleared"
has "$out" "\"$late2\": queued for the next cycle" "resend-failed.cmd queued the failed package again"
has "$out" "AZS-017" "resend-failed.cmd shows the status"
if [ "$(tail -n 1 "$out" | tr -d '\r')" = "Всё отправлено и получено." ]; then ok "resend-failed.cmd ends with the verdict in the station's language (ru)"; else bad "resend-failed.cmd ends with the verdict in Russian (got: $(tail -n 1 "$out"))"; fi
if cmp -s "$work/late2.xml" "$share/in/AZS-017/$late2"; then ok "the failed package arrived byte-identical"; else bad "the failed package arrived byte-identical"; fi

# resend-failed.cmd passes a failure through: a config that does not load
run resend-failed.cmd 'no such folder\sprelay.yaml'
expect_rc 1 "resend-failed.cmd with a missing config"
has "$out" "RESULT: ERROR" "resend-failed.cmd ends with RESULT: ERROR then"

# an sftp route: ssh2 in the bundle runs on its pure-JS fallbacks (its native crypto binding and
# cpu-features are not in the zip); the in-process test server of the suites, on 127.0.0.1
cat >"$work/sftp-server.mts" <<EOF
import { writeFileSync } from 'node:fs';
import { startSftpServer } from '$root/test/servers/sftp-server.ts';
const s = await startSftpServer({ openSshExtensions: true });
writeFileSync('$work/sftp.json', JSON.stringify({ port: s.port, root: s.root, user: s.user, password: s.password, hostKey: s.hostKeyFingerprint }));
const stop = () => s.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
setTimeout(stop, 300_000).unref();
setInterval(() => {}, 60_000);
EOF
node --import tsx "$work/sftp-server.mts" >"$work/sftp-server.log" 2>&1 &
sftp_pid=$!
for _ in $(seq 1 60); do [ -s "$work/sftp.json" ] && break; sleep 0.5; done
if [ -s "$work/sftp.json" ]; then
  sftp_root=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["root"])' "$work/sftp.json")
  mkdir -p "$bundle/sftp-outbox" "$sftp_root/in"
  python3 - "$work/sftp.json" "$bundle/sftp.yaml" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
open(sys.argv[2], 'w', newline='\r\n').write(f"""station: AZS-017
dataDir: ./data-sftp
settle: 1s
profiles:
  office-sftp:
    type: sftp
    host: 127.0.0.1
    port: {c['port']}
    user: {c['user']}
    password: ${{SFTP_PASSWORD}}
    hostKey: {c['hostKey']}
routes:
  - name: export-sftp
    direction: out
    profile: office-sftp
    local: ./sftp-outbox
    remote: /in
    schedule: "*/5 * * * *"
""")
EOF
  cp "$work/expected/out/"* "$bundle/sftp-outbox/"
  SFTP_PASSWORD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$work/sftp.json")
  export SFTP_PASSWORD
  sleep 2
  run sprelay.cmd --config sftp.yaml check
  expect_rc 0 "sprelay.cmd --config sftp.yaml check (connect, host key, login, list, write probe over SFTP)"
  run sprelay.cmd --config sftp.yaml once
  expect_rc 0 "sprelay.cmd --config sftp.yaml once"
  if same_dir "$work/expected/out" "$sftp_root/in"; then ok "both packages arrived over SFTP byte-identical"; else bad "both packages arrived over SFTP byte-identical"; fi
  unset SFTP_PASSWORD
else
  bad "the SFTP test server did not start ($(tail -n 5 "$work/sftp-server.log"))"
fi
kill "$sftp_pid" 2>/dev/null
wait "$sftp_pid" 2>/dev/null

# the task definition: the shipped one for C:\sprelay, and install-task.cmd's for this folder
python3 - "$bundle/sprelay-task.xml" 'C:\sprelay' >"$work/task1.txt" 2>&1 <<'EOF'
import sys, xml.etree.ElementTree as ET
ns = {'t': 'http://schemas.microsoft.com/windows/2004/02/mit/task'}
raw = open(sys.argv[1], 'rb').read()
assert raw[:2] == b'\xff\xfe', 'not UTF-16LE with a BOM'
t = ET.fromstring(raw.decode('utf-16').replace('encoding="UTF-16"', ''))
g = lambda p: t.find(p, ns).text
want = {
    't:Triggers/t:TimeTrigger/t:Repetition/t:Interval': 'PT5M',
    't:Settings/t:MultipleInstancesPolicy': 'IgnoreNew',
    't:Principals/t:Principal/t:LogonType': 'Password',
    't:Actions/t:Exec/t:Command': sys.argv[2] + '\\sprelay.cmd',
    't:Actions/t:Exec/t:Arguments': 'once',
    't:Actions/t:Exec/t:WorkingDirectory': sys.argv[2],
}
bad = [f'{k}={g(k)!r}, expected {v!r}' for k, v in want.items() if g(k) != v]
print('; '.join(bad) or 'ok')
EOF
if [ "$(cat "$work/task1.txt")" = ok ]; then ok "sprelay-task.xml: every 5 minutes, IgnoreNew, LogonType Password, runs C:\\sprelay\\sprelay.cmd once"; else bad "sprelay-task.xml: $(cat "$work/task1.txt")"; fi
run install-task.cmd
expect_rc 0 "install-task.cmd (Wine's schtasks accepts the XML; Wine does not run tasks)"
has "$out" "RESULT: OK" "install-task.cmd ends with RESULT: OK"
"$WINE" schtasks /delete /tn sprelay /f >/dev/null 2>&1 </dev/null || true
# (the same checks, now for this folder)
python3 - "$bundle/sprelay-task.xml" "$(winpath "$bundle")" >"$work/task2.txt" 2>&1 <<'EOF'
import sys, xml.etree.ElementTree as ET
ns = {'t': 'http://schemas.microsoft.com/windows/2004/02/mit/task'}
t = ET.fromstring(open(sys.argv[1], 'rb').read().decode('utf-16').replace('encoding="UTF-16"', ''))
cmd = t.find('t:Actions/t:Exec/t:Command', ns).text
wd = t.find('t:Actions/t:Exec/t:WorkingDirectory', ns).text
print('ok' if (cmd, wd) == (sys.argv[2] + '\\sprelay.cmd', sys.argv[2]) else f'Command {cmd!r}, WorkingDirectory {wd!r}')
EOF
if [ "$(cat "$work/task2.txt")" = ok ]; then ok "install-task.cmd rewrote sprelay-task.xml for its own folder (space and Cyrillic in the path)"; else bad "install-task.cmd rewrote sprelay-task.xml: $(cat "$work/task2.txt")"; fi

finish
