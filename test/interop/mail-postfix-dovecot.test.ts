// Interop tier: the e-mail transport end to end through real Debian servers started by
// scripts/interop/mail-up.sh on 127.0.0.1: station A submits its packages to postfix (STARTTLS
// required, AUTH checked by dovecot), postfix delivers them over LMTP into the office mailbox in
// dovecot, and agent B's in-route takes them out over IMAP into its inbox. Real configs (YAML
// parsed by agent/config.ts), real Agents, the real transports; the office mailbox is inspected with
// a separate imapflow client.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { storedZip } from '../../scripts/samples.mjs';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { Agent } from '../../agent/agent.js';
import { checkRoute, type RouteCheck } from '../../agent/check.js';
import { parseConfig } from '../../agent/config.js';
import { createLogger } from '../../agent/log.js';
import { resend } from '../../agent/maintenance.js';
import { messageIdFor } from '../../transports/smtp.js';
import { withInteropEnv, type Need } from './env.js';

withInteropEnv('SPRELAY_MAIL_ENV', 'e-mail interop (postfix + dovecot)', suites);

// ---- packages ---------------------------------------------------------------------------------------

const SERVIO = 'GSMARCHIVE_3 11_05_2023 8_01_02 - 11_05_2023 9_01_02.XML';
const CYRILLIC = 'Сменный отчёт АЗС 17 11_05_2023.xml';
const ZIP = 'price list 2023-05-11.zip';

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A ClientDataSet-style XML package, as SERVIO PUMP writes them. */
function cdsXml(tag: string, rows = 50): Buffer {
  const r = Array.from({ length: rows }, (_, i) => `<ROW ID="${i + 1}" NOTE="${tag}"/>`).join('');
  return Buffer.from(
    `<?xml version="1.0" standalone="yes"?><DATAPACKET Version="2.0"><METADATA><FIELDS>` +
      `<FIELD attrname="ID" fieldtype="i4"/></FIELDS></METADATA><ROWDATA>${r}</ROWDATA></DATAPACKET>`,
  );
}

/** windows-1251 XML: bytes that are not UTF-8, so any re-encoding on the way would show. */
function cp1251Xml(): Buffer {
  // "АЗС" and "Дизельное топливо" in windows-1251
  const azs = Buffer.from([0xc0, 0xc7, 0xd1]);
  const diesel = Buffer.from([
    0xc4, 0xe8, 0xe7, 0xe5, 0xeb, 0xfc, 0xed, 0xee, 0xe5, 0x20, 0xf2, 0xee, 0xef, 0xeb, 0xe8, 0xe2, 0xee,
  ]);
  return Buffer.concat([
    Buffer.from('<?xml version="1.0" encoding="windows-1251"?>\r\n<REPORT STATION="'),
    azs,
    Buffer.from(' 17">\r\n<FUEL NAME="'),
    diesel,
    Buffer.from('" LITRES="1234.5"/>\r\n</REPORT>\r\n'),
  ]);
}

/** A real zip (one stored entry of every byte value, CRLFs and NULs included). */
function binaryZip(): Buffer {
  const name = 'bytes.bin';
  const data = Buffer.alloc(64 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
  return storedZip(name, data);
}

// ---- the suites ---------------------------------------------------------------------------------------

function suites(need: Need): void {
  const host = need('SMTP_HOST');
  const smtpPort = Number(need('SMTP_PORT'));
  const imapPort = Number(need('IMAP_PORT'));
  const imapsPort = Number(need('IMAPS_PORT'));
  const caFile = need('CA');
  const otherCaFile = need('OTHER_CA');
  const office = { user: need('OFFICE_USER'), password: need('OFFICE_PASSWORD'), address: need('OFFICE_ADDRESS') };
  const station = { user: need('STATION_USER'), password: need('STATION_PASSWORD'), address: need('STATION_ADDRESS') };
  const ca = readFileSync(caFile, 'utf8');
  const secrets = { SMTP_PASSWORD: station.password, IMAP_PASSWORD: office.password, WRONG_PASSWORD: 'not-the-pw-42' };
  const CASE = { timeout: 90_000 };
  const DELIVERY_MS = 20_000;

  let dir: string;
  const agents: Agent[] = [];

  // ---- the office mailbox, seen by a client of its own ----------------------------------------------

  async function withOffice<T>(fn: (client: ImapFlow) => Promise<T>): Promise<T> {
    const client = new ImapFlow({
      host,
      port: imapPort,
      secure: false,
      doSTARTTLS: true,
      auth: { user: office.user, pass: office.password },
      tls: { ca, rejectUnauthorized: true },
      logger: false,
      disableAutoIdle: true,
    });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.logout().catch(() => client.close());
    }
  }

  interface Seen {
    uid: number;
    messageId: string;
    subject: string;
    from: string;
    flags: string[];
    headers: string;
  }

  /** The messages of a mailbox (none when it does not exist). */
  async function messagesIn(mailbox: string): Promise<Seen[]> {
    return withOffice(async (client) => {
      const boxes = await client.list();
      if (!boxes.some((b) => b.path === mailbox)) return [];
      const lock = await client.getMailboxLock(mailbox, { readOnly: true });
      try {
        const box = client.mailbox;
        if (!box || box.exists === 0) return [];
        const msgs = await client.fetchAll('1:*', {
          uid: true,
          envelope: true,
          flags: true,
          headers: ['received', 'message-id', 'x-sprelay-sha256', 'x-sprelay-station'],
        });
        return msgs.map((m) => ({
          uid: m.uid,
          messageId: m.envelope?.messageId ?? '',
          subject: m.envelope?.subject ?? '',
          from: m.envelope?.from?.[0]?.address ?? '',
          flags: [...(m.flags ?? [])],
          headers: (m.headers?.toString('utf8') ?? '').replace(/\r?\n[ \t]+/g, ' '), // unfolded
        }));
      } finally {
        lock.release();
      }
    });
  }

  /** Empties the office INBOX and drops Processed, so every case starts from the same mailbox. */
  async function resetMailbox(): Promise<void> {
    await withOffice(async (client) => {
      const boxes = await client.list();
      for (const b of boxes) if (b.path !== 'INBOX') await client.mailboxDelete(b.path);
      const lock = await client.getMailboxLock('INBOX');
      try {
        if (client.mailbox && client.mailbox.exists > 0) await client.messageDelete('1:*');
      } finally {
        lock.release();
      }
    });
  }

  /** Waits until postfix has delivered `count` messages into the INBOX (and no more turn up). */
  async function awaitInbox(count: number): Promise<Seen[]> {
    const until = Date.now() + DELIVERY_MS;
    let got: Seen[] = [];
    while (Date.now() < until) {
      got = await messagesIn('INBOX');
      if (got.length >= count) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(
      got.length,
      count,
      `messages in the office INBOX after ${DELIVERY_MS} ms (see ${need('POSTFIX_LOG')})`,
    );
    await new Promise((r) => setTimeout(r, 300));
    const settled = await messagesIn('INBOX');
    assert.equal(settled.length, count, 'no further copies turn up');
    return settled;
  }

  // ---- agents from real configs ---------------------------------------------------------------------

  function agent(yaml: string, file: string): Agent {
    const configFile = join(dir, file);
    writeFileSync(configFile, yaml);
    const a = new Agent(parseConfig(yaml, configFile, secrets), {
      log: createLogger({ level: 'warn', quiet: !process.env.SPRELAY_TEST_LOG }),
    });
    agents.push(a);
    return a;
  }

  /** Station A: mails its outbox to the office through postfix (STARTTLS + AUTH as azs017). */
  function stationA(opts: { password?: string; tls?: string } = {}): Agent {
    return agent(
      `station: AZS-017
dataDir: ./a-data
settle: 100ms
timeout: 10s
profiles:
  office-mail:
    type: email
    from: ${station.address}
    smtp: { host: ${host}, port: ${smtpPort}, security: starttls, user: ${station.user}, password: \${${opts.password ?? 'SMTP_PASSWORD'}} }
${opts.tls ?? `    tls: { ca: ${caFile} }`}
routes:
  - name: export
    direction: out
    profile: office-mail
    local: ./a-outbox
    to: [${office.address}]
    schedule: "* * * * *"
`,
      'a.yaml',
    );
  }

  /** Agent B: takes what the station sent out of the office mailbox over IMAP. */
  function agentB(opts: { password?: string; tls?: string; security?: 'starttls' | 'tls' } = {}): Agent {
    const security = opts.security ?? 'starttls';
    return agent(
      `station: OFFICE-1
dataDir: ./b-data
timeout: 10s
profiles:
  mail:
    type: email
    imap: { host: ${host}, port: ${security === 'tls' ? imapsPort : imapPort}, security: ${security}, user: ${office.user}, password: \${${opts.password ?? 'IMAP_PASSWORD'}} }
${opts.tls ?? `    tls: { ca: ${caFile} }`}
routes:
  - name: import
    direction: in
    profile: mail
    remote: INBOX
    local: ./b-inbox
    allowFrom: [${station.address}]
    afterReceive: move:Processed
    schedule: "* * * * *"
`,
      'b.yaml',
    );
  }

  /** `sprelay check` for one route of an agent: the local folder, then the transport's probe. */
  function check(a: Agent, route: string): Promise<RouteCheck> {
    return checkRoute(a.config, a.route(route), process.env, new AbortController().signal);
  }

  function stepText(c: RouteCheck): string {
    return c.steps.map((s) => `${s.ok ? 'ok  ' : 'FAIL'} ${s.step}${s.detail ? ` — ${s.detail}` : ''}`).join('\n');
  }

  const outbox = () => join(dir, 'a-outbox');
  const inbox = () => join(dir, 'b-inbox');

  before(async () => {
    // the servers answer at all: a clear message instead of every case timing out
    await withOffice(async () => undefined).catch((err: Error) => {
      throw new Error(`dovecot on ${host}:${imapPort} does not answer (${err.message}): run scripts/run-interop.sh`);
    });
  });
  beforeEach(async () => {
    await resetMailbox();
    dir = mkdtempSync(join(tmpdir(), 'sprelay-mail-interop-'));
    for (const d of ['a-outbox', 'b-inbox']) mkdirSync(join(dir, d));
  });
  afterEach(() => {
    for (const a of agents.splice(0)) a.close();
    rmSync(dir, { recursive: true, force: true });
  });
  after(async () => {
    await resetMailbox().catch(() => undefined);
  });

  describe('e-mail interop: station -> postfix -> dovecot -> agent B', () => {
    it('sprelay check passes for both directions (STARTTLS and implicit TLS)', CASE, async () => {
      const a = stationA();
      const out = await check(a, 'export');
      assert.ok(out.ok, stepText(out));
      assert.ok(
        out.steps.some((s) => s.step === `log in as ${station.user}` && s.ok),
        stepText(out),
      );
      for (const security of ['starttls', 'tls'] as const) {
        const b = agentB({ security });
        const inn = await check(b, 'import');
        assert.ok(inn.ok, `${security}:\n${stepText(inn)}`);
        assert.ok(
          inn.steps.some((s) => s.step === 'open mailbox INBOX' && s.ok),
          stepText(inn),
        );
        b.close();
        agents.splice(agents.indexOf(b), 1);
      }
    });

    it(
      'three packages arrive with identical bytes, exactly once, and are filed \\Seen in Processed',
      CASE,
      async () => {
        const a = stationA();
        const b = agentB();
        const files = new Map<string, Buffer>([
          [SERVIO, cdsXml('servio')],
          [CYRILLIC, cp1251Xml()],
          [ZIP, binaryZip()],
        ]);
        for (const [n, bytes] of files) writeFileSync(join(outbox(), n), bytes);

        const [out] = await a.runOnce(['export']);
        assert.equal(out!.error, null, JSON.stringify(out));
        assert.equal(out!.sent, files.size, JSON.stringify(out));
        const sent = a.ledger.list({ route: 'export' });
        assert.ok(sent.every((r) => r.state === 'sent'));

        const delivered = await awaitInbox(files.size);
        const ids = new Map([...files].map(([n, bytes]) => [messageIdFor('AZS-017', n, sha256(bytes)), n]));
        for (const m of delivered) {
          const name = ids.get(m.messageId);
          assert.ok(name !== undefined, `unexpected Message-ID ${m.messageId}`);
          assert.equal(m.from, station.address);
          assert.equal(m.subject, `SPRELAY AZS-017 export ${name}`);
          // ESMTPSA: postfix took it over TLS (S) from an authenticated client (A)
          assert.match(m.headers, /with ESMTPSA/, m.headers);
          assert.match(m.headers, new RegExp(`x-sprelay-sha256: ${sha256(files.get(name)!)}`, 'i'));
          assert.ok(!m.flags.includes('\\Seen'), 'delivered unseen');
        }
        assert.deepEqual(
          sent.map((r) => r.remoteRef).sort(),
          [...ids.keys()].sort(),
          'the ledger keeps the Message-IDs postfix delivered',
        );

        const [inn] = await b.runOnce(['import']);
        assert.equal(inn!.error, null, JSON.stringify(inn));
        assert.equal(inn!.delivered, files.size, JSON.stringify(inn));
        assert.equal(inn!.quarantined, 0, JSON.stringify(inn));
        assert.deepEqual(readdirSync(inbox()).sort(), [...files.keys()].sort());
        for (const [n, bytes] of files) {
          assert.equal(sha256(readFileSync(join(inbox(), n))), sha256(bytes), `bytes of ${n}`);
        }
        const rows = b.ledger.list({ route: 'import' });
        assert.deepEqual(
          rows.map((r) => r.state),
          rows.map(() => 'delivered'),
        );
        assert.equal(rows.length, files.size, 'each package recorded once');
        assert.ok(rows.every((r) => r.origin === station.address && r.ackedAt !== null));

        assert.deepEqual(await messagesIn('INBOX'), [], 'taken out of the INBOX');
        const processed = await messagesIn('Processed');
        assert.equal(processed.length, files.size);
        assert.ok(
          processed.every((m) => m.flags.includes('\\Seen')),
          'flagged \\Seen and moved to Processed',
        );
        assert.deepEqual(processed.map((m) => m.messageId).sort(), [...ids.keys()].sort());

        const [again] = await b.runOnce(['import']);
        assert.equal(again!.delivered, 0, JSON.stringify(again));
        assert.equal(b.ledger.list({ route: 'import' }).length, files.size, 'nothing new on a second cycle');
      },
    );

    it('a resend arrives as a second message with the same Message-ID and is delivered once', CASE, async () => {
      const a = stationA();
      const b = agentB({ security: 'tls' }); // this time over implicit TLS
      const bytes = cdsXml('resent after a lost reply');
      writeFileSync(join(outbox(), SERVIO), bytes);

      const [first] = await a.runOnce(['export']);
      assert.equal(first!.sent, 1, JSON.stringify(first));
      // the reply was lost, as far as anyone can tell: the person resends it
      const [row] = a.ledger.list({ route: 'export' });
      const outcome = await resend(a.ledger, a.spool, { ids: [row!.id] });
      assert.deepEqual(outcome.refused, []);
      assert.equal(outcome.requeued.length, 1);
      const [second] = await a.runOnce(['export']);
      assert.equal(second!.sent, 1, JSON.stringify(second));

      const delivered = await awaitInbox(2);
      const id = messageIdFor('AZS-017', SERVIO, sha256(bytes));
      assert.deepEqual(
        delivered.map((m) => m.messageId),
        [id, id],
        'two messages, one Message-ID',
      );
      assert.equal(a.ledger.get(row!.id)!.remoteRef, id);

      const [inn] = await b.runOnce(['import']);
      assert.equal(inn!.error, null, JSON.stringify(inn));
      assert.equal(inn!.delivered, 1, JSON.stringify(inn));
      assert.equal(inn!.duplicates, 1, JSON.stringify(inn));
      assert.deepEqual(readdirSync(inbox()), [SERVIO]);
      assert.equal(sha256(readFileSync(join(inbox(), SERVIO))), sha256(bytes));
      assert.deepEqual(
        b.ledger.list({ route: 'import' }).map((r) => r.state),
        ['delivered', 'duplicate'],
      );
      assert.deepEqual(await messagesIn('INBOX'), [], 'both copies taken out of the INBOX');
      const processed = await messagesIn('Processed');
      assert.equal(processed.length, 2);
      assert.ok(processed.every((m) => m.flags.includes('\\Seen') && m.messageId === id));
    });

    it('a wrong password is an auth error, in check and in a cycle, and never shows the password', CASE, async () => {
      const a = stationA({ password: 'WRONG_PASSWORD' });
      const out = await check(a, 'export');
      assert.equal(out.ok, false);
      const login = out.steps.find((s) => s.step === `log in as ${station.user}`);
      assert.ok(login && !login.ok && login.code === 'auth', stepText(out));
      assert.match(login.detail ?? '', /login refused/, stepText(out));
      assert.ok(out.steps.find((s) => s.step === 'TLS (starttls)')?.ok, 'TLS came before the login');

      writeFileSync(join(outbox(), SERVIO), cdsXml('never sent'));
      const [cycle] = await a.runOnce(['export']);
      assert.equal(cycle!.sent, 0, JSON.stringify(cycle));
      // a refused login is the route's problem, not the package's: it stays queued for the next cycle
      assert.match(cycle!.error ?? '', /login refused: .*\b535\b/, JSON.stringify(cycle));
      const [row] = a.ledger.list({ route: 'export' });
      assert.equal(row!.state, 'queued', JSON.stringify(row));
      const why = `${cycle!.error} ${row!.lastError ?? ''}`;
      assert.ok(!why.includes(secrets.WRONG_PASSWORD), 'the password never appears');

      const b = agentB({ password: 'WRONG_PASSWORD' });
      const inn = await check(b, 'import');
      assert.equal(inn.ok, false);
      const imapLogin = inn.steps.find((s) => s.step === `log in as ${office.user}`);
      assert.ok(imapLogin && !imapLogin.ok && imapLogin.code === 'auth', stepText(inn));
      assert.ok(!stepText(inn).includes(secrets.WRONG_PASSWORD));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await messagesIn('INBOX'), [], 'nothing was submitted');
    });

    it('a certificate from a CA not trusted is a TLS error, before any login', CASE, async () => {
      for (const [label, tls] of [
        ['no tls section (system CAs only)', ''],
        ['tls.ca of another CA', `    tls: { ca: ${otherCaFile} }`],
      ] as const) {
        const a = stationA({ tls });
        const out = await check(a, 'export');
        const tlsStep = out.steps.find((s) => s.step === 'TLS (starttls)');
        assert.ok(tlsStep && !tlsStep.ok && tlsStep.code === 'tls', `${label}:\n${stepText(out)}`);
        assert.ok(!out.steps.some((s) => s.step.startsWith('log in') && s.ok), `${label}: no login`);

        for (const security of ['starttls', 'tls'] as const) {
          const b = agentB({ tls, security });
          const inn = await check(b, 'import');
          const step = inn.steps.find((s) => s.step === `TLS (${security})`);
          assert.ok(step && !step.ok && step.code === 'tls', `${label}, imap ${security}:\n${stepText(inn)}`);
        }
      }

      const a = stationA({ tls: '' });
      writeFileSync(join(outbox(), SERVIO), cdsXml('never sent'));
      const [cycle] = await a.runOnce(['export']);
      assert.equal(cycle!.sent, 0, JSON.stringify(cycle));
      assert.match(cycle!.error ?? '', /TLS: the server certificate is not trusted/, JSON.stringify(cycle));
      assert.equal(a.ledger.list({ route: 'export' })[0]!.state, 'queued');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await messagesIn('INBOX'), [], 'nothing was submitted');
    });
  });
}
