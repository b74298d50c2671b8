// The control files' wire format (agent/control/): names that are safe on every route and never
// taken for a package, and contents that decode to typed objects or to a refusal that says what
// and where. The fixed samples in test/fixtures/control/ are the bytes as this version writes them
// (v1), a one-version-newer writer (v2, extra fields: accepted), a two-versions-newer one (v3:
// refused) and hostile ones; `.wire` so that prettier leaves the bytes alone.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { win32 } from 'node:path';
import { describe, it } from 'node:test';
import {
  CONTROL_VERSION,
  MAX_CONTROL_BYTES,
  MAX_ERROR_CHARS,
  decodeControl,
  decodeHeartbeat,
  decodeReceipt,
  encodeHeartbeat,
  encodeReceipt,
  receiptsFor,
  type Heartbeat,
  type Receipt,
  type ReceiptItem,
} from '../agent/control/format.js';
import {
  STATION_RE,
  controlKind,
  heartbeatName,
  isSafeStation,
  receiptName,
  stationSegment,
} from '../agent/control/names.js';
import { topSchema } from '../agent/config/schemas.js';
import { checkName, matchesInclude } from '../agent/inspect.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/control/${name}`, import.meta.url));
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value), 'utf8');

const HASH_A = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const RECEIPT: Receipt = {
  from: 'OFFICE',
  to: 'AZS-017',
  items: [
    {
      name: 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML',
      sha256: HASH_A,
      size: 48213,
      deliveredAt: '2026-12-02T05:00:00.000Z',
    },
    {
      name: 'Смена 12.xml',
      sha256: '60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752',
      size: 912,
      deliveredAt: '2026-12-02T05:00:01.250Z',
    },
  ],
};
const HEARTBEAT: Heartbeat = {
  station: 'AZS-017',
  sentAt: '2026-12-02T05:00:00.000Z',
  agent: { version: '0.1.0', node: 'v20.20.2', os: 'win32-x64', ledgerDriver: 'better-sqlite3 12.11.1, SQLite 3.50.4' },
  routes: [
    {
      name: 'export',
      direction: 'out',
      profile: 'office-sftp',
      verdict: 'attention',
      since: '2026-12-02T03:10:00.000Z',
      counts: { sent: 412, failed: 1, queued: 2 },
      oldestUnsentAt: '2026-12-02T03:10:00.000Z',
      lastRunAt: '2026-12-02T04:55:00.000Z',
      lastSuccessAt: '2026-12-02T04:55:03.000Z',
      lastError: null,
    },
    {
      name: 'import',
      direction: 'in',
      profile: 'office-mail',
      verdict: 'ok',
      since: null,
      counts: { delivered: 96, duplicate: 1 },
      oldestUnsentAt: null,
      lastRunAt: '2026-12-02T04:50:00.000Z',
      lastSuccessAt: '2026-12-02T04:50:02.000Z',
      lastError: 'IMAP login failed: authentication rejected by mail.example.com',
    },
  ],
  unconfirmed: 0,
  disk: { free: 21474836480, total: 256060514304 },
};

function refusal(r: { ok: boolean; reason?: string }): string {
  assert.equal(r.ok, false, 'expected a refusal');
  return r.reason!;
}

describe('control file names', () => {
  const now = Date.UTC(2026, 11, 2, 5, 4, 9, 750);

  it('writes the documented shapes', () => {
    assert.equal(receiptName('OFFICE', now, 'deadbeef'), 'sprelay-receipt_OFFICE_20261202T050409Z_deadbeef.json');
    assert.equal(heartbeatName('AZS-017', now, '0A1B2C3D'), 'sprelay-heartbeat_AZS-017_20261202T050409Z_0a1b2c3d.json');
    // `_` separates fields, so a station's `_` is written `~` (not a station character: one to one)
    assert.equal(heartbeatName('AZS_017', now, '00000001'), 'sprelay-heartbeat_AZS~017_20261202T050409Z_00000001.json');
    assert.throws(() => receiptName('OFFICE', now, 'xyz'), /8 hex digits/);
    assert.throws(() => receiptName('AZS 017', now, 'deadbeef'), /not a station name/);
  });

  it('every station the config allows gives a safe, ASCII name of at most 100 characters', () => {
    const longA = 'A'.repeat(64);
    const longB = 'A'.repeat(63) + 'B';
    const stations = ['A', '..', '.', 'CON', 'nul', 'x.', '-', '_', 'AZS-017', 'a.b_c-d', longA, longB, '_'.repeat(64)];
    for (const s of stations) {
      for (const name of [receiptName(s, now, 'ffffffff'), heartbeatName(s, now, 'ffffffff')]) {
        assert.equal(checkName(name), null, `${name}: ${checkName(name)}`);
        assert.equal(win32.basename(name), name);
        assert.match(name, /^[\x21-\x7e]+$/, 'ASCII without spaces');
        assert.ok(name.length <= 100, `${name.length}: ${name}`);
        assert.ok(!name.toLowerCase().startsWith('.sprelay-'));
        assert.equal(matchesInclude(name, ['*.xml', '*.zip']), false, 'never a SERVIO package');
        assert.notEqual(controlKind(name), null);
      }
    }
    // long stations are cut with a hash of the whole name: two of them still differ
    assert.notEqual(stationSegment(longA), stationSegment(longB));
    assert.equal(stationSegment(longA).length, 40);
  });

  it("the station alphabet is the config's own (the name safety depends on it)", () => {
    const samples = ['', 'A'.repeat(64), 'A'.repeat(65), 'АЗС', 'a b', 'a~b', 'a+b'];
    for (let c = 0; c < 0x250; c++) samples.push(`A${String.fromCharCode(c)}`);
    for (const s of samples)
      assert.equal(STATION_RE.test(s), topSchema.shape.station.safeParse(s).success, JSON.stringify(s));
  });

  it('recognises control files by prefix, case-insensitively, on the name Windows would open', () => {
    assert.equal(controlKind('sprelay-receipt_OFFICE_20261202T050409Z_deadbeef.json'), 'receipt');
    assert.equal(controlKind('SPRELAY-HEARTBEAT_AZS-017_20261202T050409Z_DEADBEEF.JSON'), 'heartbeat');
    // malformed or hostile ones are still ours: decoded, refused and recorded, never imported
    assert.equal(controlKind('sprelay-receipt_garbage.xml'), 'receipt');
    assert.equal(controlKind('..\\sprelay-heartbeat_x.json'), 'heartbeat');
    assert.equal(controlKind('sprelay-receipt_x.json:stream'), 'receipt');
    for (const other of [
      'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML',
      'sprelay-receipt.json',
      'receipt_OFFICE.json',
      '.sprelay-receipt_x.json',
      'sprelay-status_x.json',
    ])
      assert.equal(controlKind(other), null, other);
  });
});

describe('stations that stand in a path', () => {
  it('isSafeStation: the station rule and a folder name on Windows and Linux', () => {
    for (const ok of ['AZS-017', 'ST01', 'a.b', 'x_y', 'A'.repeat(64)]) assert.ok(isSafeStation(ok), ok);
    for (const bad of ['..', '.', 'CON', 'nul', 'COM1', 'LPT9', 'AUX.x', 'ST01.', 'a b', 'a/b', '', 'A'.repeat(65)])
      assert.ok(!isSafeStation(bad), bad);
  });
});

describe('control file contents: samples', () => {
  it('v1 receipt and heartbeat: the encoder writes exactly the fixed samples and they decode back', () => {
    assert.equal(encodeReceipt(RECEIPT).toString('utf8'), fixture('receipt-v1.wire').toString('utf8'));
    assert.equal(encodeHeartbeat(HEARTBEAT).toString('utf8'), fixture('heartbeat-v1.wire').toString('utf8'));
    assert.deepEqual(decodeReceipt(fixture('receipt-v1.wire')), { ok: true, value: RECEIPT, v: 1 });
    assert.deepEqual(decodeHeartbeat(fixture('heartbeat-v1.wire')), { ok: true, value: HEARTBEAT, v: 1 });
    assert.equal(CONTROL_VERSION, 1);
  });

  it('v2 (one version newer, unknown fields): accepted, unknown fields dropped, known ones kept', () => {
    const r = decodeReceipt(fixture('receipt-v2-extra.wire'));
    assert.deepEqual(r, {
      ok: true,
      v: 2,
      value: {
        from: 'OFFICE',
        to: 'AZS-017',
        items: [{ name: RECEIPT.items[0]!.name, sha256: HASH_A, size: 48213, deliveredAt: '2026-12-02T05:00:00.000Z' }],
      },
    });
    const h = decodeHeartbeat(fixture('heartbeat-v2-extra.wire'));
    assert.ok(h.ok);
    assert.equal(h.v, 2);
    assert.deepEqual(h.value.agent, {
      version: '0.2.0',
      node: 'v22.11.0',
      os: 'win32-x64',
      ledgerDriver: 'node:sqlite 22.11.0',
    });
    assert.deepEqual(h.value.routes[0]!.counts, { sent: 10, confirmed: 400, parked: 1 });
    assert.deepEqual(h.value.disk, { free: 1000, total: 2000 });
    assert.equal('minRateBps' in h.value.routes[0]!, false);
  });

  it('v3 (two versions newer): refused with the reason', () => {
    assert.equal(
      refusal(decodeReceipt(fixture('receipt-v3.wire'))),
      'receipt: version 3 is newer than this agent reads (1 and 2): recorded and ignored; update sprelay here',
    );
  });

  it('decodeControl goes by the kind the name says, and the content must say the same', () => {
    assert.equal(decodeControl('receipt', fixture('receipt-v1.wire')).ok, true);
    assert.equal(
      refusal(decodeControl('heartbeat', fixture('receipt-v1.wire'))),
      'heartbeat: "sprelay" is "receipt", expected "heartbeat" (the name says heartbeat)',
    );
  });
});

describe('control file contents: hostile', () => {
  const item: ReceiptItem = { name: 'a.xml', sha256: HASH_A, size: 1, deliveredAt: '2026-12-02T05:00:00Z' };
  const receipt = (over: Record<string, unknown>) =>
    json({ sprelay: 'receipt', v: 1, from: 'OFFICE', to: 'AZS-017', items: [item], ...over });

  it('refuses each with what and where', () => {
    const cases: [Buffer, string][] = [
      [fixture('receipt-bad-json.wire'), 'receipt: file is not valid JSON (at character 84)'],
      [Buffer.from('{"sprelay":'), 'receipt: file is not valid JSON'],
      [fixture('receipt-bad-hash.wire'), 'receipt item 3: sha256 is not 64 hex characters'],
      [fixture('receipt-traversal.wire'), 'receipt item 1: name is refused (name contains a path separator)'],
      [fixture('receipt-deep.wire'), 'receipt: JSON is nested deeper than 16 levels'],
      [
        fixture('heartbeat-wrong-types.wire'),
        'receipt: "sprelay" is "heartbeat", expected "receipt" (the name says receipt)',
      ],
      [receipt({ items: Array.from({ length: 2000 }, () => item) }), 'receipt: items has more than 1000 entries'],
      [receipt({ items: [] }), 'receipt: items is empty'],
      [receipt({ items: [{ ...item, size: '1' }] }), 'receipt item 1: size is a string, expected a number'],
      [receipt({ items: [{ ...item, size: -1 }] }), 'receipt item 1: size is not a whole number >= 0'],
      [receipt({ items: [{ ...item, size: undefined }] }), 'receipt item 1: size is missing'],
      [
        receipt({ items: [{ ...item, name: 'CON.xml' }] }),
        'receipt item 1: name is refused (reserved device name "CON")',
      ],
      [
        receipt({ items: [{ ...item, deliveredAt: 'yesterday' }] }),
        'receipt item 1: deliveredAt is not an ISO UTC time (like 2026-12-02T05:00:00Z)',
      ],
      [receipt({ items: { 0: item } }), 'receipt: items is an object, expected a list'],
      [receipt({ from: 5 }), 'receipt: from is a number, expected text'],
      [
        receipt({ to: 'AZS 017<script>' }),
        'receipt: to is not a station name (1 to 64 of A-Z, a-z, 0-9, ".", "_", "-")',
      ],
      [receipt({ v: '1' }), 'receipt: v is "1", expected a whole number >= 1'],
      [receipt({ v: 0 }), 'receipt: v is 0, expected a whole number >= 1'],
      [json([1, 2]), 'receipt: content is a list, expected one JSON object'],
      [Buffer.from([0x7b, 0xff, 0x7d]), 'receipt: file is not UTF-8 text'],
      [
        Buffer.alloc(MAX_CONTROL_BYTES + 1, 0x20),
        `receipt: file is ${MAX_CONTROL_BYTES + 1} bytes, more than 1048576 (1 MB)`,
      ],
    ];
    for (const [bytes, reason] of cases) assert.equal(refusal(decodeReceipt(bytes)), reason);
  });

  it('refuses hostile heartbeats with what and where', () => {
    const hb = (over: Record<string, unknown>, route: Record<string, unknown> = {}) =>
      json({ sprelay: 'heartbeat', v: 1, ...HEARTBEAT, routes: [{ ...HEARTBEAT.routes[0], ...route }], ...over });
    const cases: [Buffer, string][] = [
      [fixture('heartbeat-wrong-types.wire'), 'heartbeat route 1: counts.sent is a string, expected a number'],
      [hb({}, { verdict: 'great' }), 'heartbeat route 1: verdict is "great", expected one of ok, attention, failing'],
      [hb({}, { counts: { Sent: 1 } }), 'heartbeat route 1: counts.Sent is not a state name'],
      [hb({}, { name: '../x' }), 'heartbeat route 1: name is not a route or profile name'],
      [hb({}, { lastError: 'x'.repeat(10_001) }), 'heartbeat route 1: lastError is longer than 10000 characters'],
      [
        hb({ routes: Array.from({ length: 101 }, () => HEARTBEAT.routes[0]) }),
        'heartbeat: routes has more than 100 entries',
      ],
      [
        hb({ agent: { ...HEARTBEAT.agent, version: 'v'.repeat(65) } }),
        'heartbeat: agent.version is longer than 64 characters',
      ],
      [hb({ agent: null }), 'heartbeat: agent is null, expected an object'],
      [hb({ unconfirmed: 1.5 }), 'heartbeat: unconfirmed is not a whole number >= 0'],
      [hb({ sentAt: '2026-12-02 05:00' }), 'heartbeat: sentAt is not an ISO UTC time (like 2026-12-02T05:00:00Z)'],
      [hb({ station: undefined }), 'heartbeat: station is missing'],
    ];
    for (const [bytes, reason] of cases) assert.equal(refusal(decodeHeartbeat(bytes)), reason);
  });

  it('station texts arrive flattened to one printable line, lastError capped', () => {
    const h = decodeHeartbeat(fixture('heartbeat-hostile-text.wire'));
    assert.ok(h.ok);
    assert.equal(h.value.agent.version, '0.1.0 [31m');
    assert.equal(h.value.agent.os, 'linux gpj.exe');
    assert.equal(h.value.routes[0]!.lastError, '<script>alert(1)</script> line two');
    const long = decodeHeartbeat(
      json({
        sprelay: 'heartbeat',
        v: 1,
        ...HEARTBEAT,
        routes: [{ ...HEARTBEAT.routes[0], lastError: 'e'.repeat(5000) }],
      }),
    );
    assert.ok(long.ok);
    assert.equal(long.value.routes[0]!.lastError!.length, MAX_ERROR_CHARS);
    assert.ok(long.value.routes[0]!.lastError!.endsWith('…'));
  });

  it('the encoder refuses to write what a reader would refuse, and splits receipts at 1000 items', () => {
    assert.throws(
      () => encodeReceipt({ ...RECEIPT, items: [{ ...RECEIPT.items[0]!, name: 'a\\b.xml' }] }),
      /invalid receipt: receipt item 1: name is refused/,
    );
    const items = Array.from({ length: 2500 }, (_, i) => ({ ...RECEIPT.items[0]!, name: `p${i}.xml` }));
    const parts = receiptsFor('OFFICE', 'AZS-017', items);
    assert.deepEqual(
      parts.map((p) => p.items.length),
      [1000, 1000, 500],
    );
    assert.deepEqual(
      parts.flatMap((p) => p.items.map((i) => i.name)),
      items.map((i) => i.name),
    );
    for (const p of parts) assert.ok(encodeReceipt(p).byteLength < MAX_CONTROL_BYTES);
  });
});
