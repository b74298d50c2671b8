#!/usr/bin/env node
// `npm run demo`: a working sprelay on the embedded default, no server needed. It lays out
// demo/ (outbox, a folder standing for the office share, inbox), writes a config with two `lan`
// routes, drops a few SERVIO-like packages into the outbox, runs one cycle of the export route
// and one of the import route, and prints `sprelay status`. Run it again to start afresh.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cp1251, storedZip } from './samples.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const demo = join(root, 'demo');
rmSync(demo, { recursive: true, force: true });
for (const d of ['outbox', 'office-share/exchange', 'inbox']) mkdirSync(join(demo, d), { recursive: true });

writeFileSync(
  join(demo, 'sprelay.yaml'),
  `# sprelay demo: station exports go to a folder standing for the office share, and come back in.
station: DEMO-001
dataDir: ./data
log: { level: info, file: ./data/logs/sprelay.log }
settle: 1s
profiles:
  office-share:
    type: lan
    root: ./office-share          # on a station: \\\\OFFICE\\exchange, a mapped drive, a mounted share
routes:
  - name: export
    direction: out
    profile: office-share
    local: ./outbox               # where SERVIO PUMP GAS writes its exports
    remote: exchange
    schedule: "*/5 * * * *"
    afterSend: archive
  - name: import
    direction: in
    profile: office-share
    remote: exchange
    local: ./inbox                # where SERVIO PUMP GAS imports from
    afterReceive: delete
    schedule: "*/5 * * * *"
`,
);

// ---- a few SERVIO-like packages ----------------------------------------------------------------
const cds = (rows) =>
  `<?xml version="1.0" standalone="yes"?><DATAPACKET Version="2.0"><METADATA><FIELDS>` +
  `<FIELD attrname="ID" fieldtype="i4"/><FIELD attrname="FUEL" fieldtype="string" WIDTH="20"/><FIELD attrname="VOLUME" fieldtype="r8"/>` +
  `</FIELDS><PARAMS/></METADATA><ROWDATA>${rows.map(([id, fuel, v]) => `<ROW ID="${id}" FUEL="${fuel}" VOLUME="${v}"/>`).join('')}</ROWDATA></DATAPACKET>\r\n`;

const outbox = join(demo, 'outbox');
writeFileSync(
  join(outbox, 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML'),
  cds([
    [1, 'A-95', 1520.5],
    [2, 'DT', 980.25],
  ]),
);
writeFileSync(
  join(outbox, 'Сменный отчёт 11_05_2023.xml'),
  Buffer.concat([
    cp1251('<?xml version="1.0" encoding="windows-1251" standalone="yes"?>'),
    cp1251(cds([[1, 'Бензин А-95', 1520.5]]).replace(/^<\?xml[^>]*\?>/, '')),
  ]),
);
writeFileSync(
  join(outbox, 'GOODS_SALES 11_05_2023.zip'),
  storedZip('GOODS_SALES.XML', Buffer.from(cds([[7, 'Coffee', 2]]))),
);

// ---- one cycle -----------------------------------------------------------------------------------
const sprelay = (...args) => {
  console.log(`\n$ sprelay ${args.join(' ')}`);
  try {
    execFileSync(process.execPath, [join(root, 'bin', 'sprelay.js'), '--config', join(demo, 'sprelay.yaml'), ...args], {
      stdio: 'inherit',
    });
  } catch (err) {
    if (err.status !== 2) throw err; // 2 = some package needs attention: status below says which
  }
};

console.log(`demo folder: ${demo}`);
console.log(`outbox: ${readdirSync(outbox).join(' | ')}`);
sprelay('once', '--route', 'export');
sprelay('once', '--route', 'import');
console.log(`\ninbox now holds: ${readdirSync(join(demo, 'inbox')).join(' | ')}`);
sprelay('status');
console.log(
  `\nTry: node bin/sprelay.js --config demo/sprelay.yaml list   (or: npx sprelay --config demo/sprelay.yaml list)`,
);
