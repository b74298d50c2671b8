// E-mail (W3, and the link's e-mail rows): sprelay's out-route to postfix against swaks sending
// one message per package, and sprelay's in-route from dovecot against mbsync + munpack. The
// office mailbox is set up and read by the bench's own IMAP client (imapflow, straight to dovecot,
// never through the proxy): emptied before every run, and filled for every fetch with the very
// messages sprelay's first send run delivered (as postfix delivered them).
import { writeFileSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import {
  BenchMismatch,
  placeCopy,
  sha256,
  smallSet,
  verifyContent,
  verifyEmpty,
  verifyExact,
  type Workload,
} from './data.js';
import { progress, type BenchContext, type Row, type Sample } from './measure.js';
import { timed, timedSeries } from './peers.js';
import { configYaml, sprelayOnce, writeConfig } from './sprelay.js';

export interface MailAccounts {
  host: string;
  /** The servers' own ports (the bench's admin client uses these). */
  smtpPort: number;
  imapPort: number;
  /** Path of the interop CA. */
  ca: string;
  office: { user: string; password: string; address: string };
  station: { user: string; password: string; address: string };
}

/** Where the measured clients connect: the servers, or the latency proxy in front of them. */
export interface MailEndpoint {
  label: string;
  host: string;
  smtpPort: number;
  imapPort: number;
}

/** How long postfix may take to deliver what was submitted into the office mailbox. */
const DELIVERY_MS = 180_000;

export class Mailbox {
  constructor(private readonly a: MailAccounts) {}

  private async with<T>(fn: (c: ImapFlow) => Promise<T>): Promise<T> {
    const client = new ImapFlow({
      host: this.a.host,
      port: this.a.imapPort,
      secure: false,
      doSTARTTLS: true,
      auth: { user: this.a.office.user, pass: this.a.office.password },
      tls: { ca: await readFile(this.a.ca, 'utf8'), rejectUnauthorized: true },
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

  /** The office INBOX empty and no other mailbox (sprelay's move targets) left. */
  async reset(): Promise<void> {
    await this.with(async (c) => {
      for (const b of await c.list()) if (b.path !== 'INBOX') await c.mailboxDelete(b.path);
      const lock = await c.getMailboxLock('INBOX');
      try {
        if (c.mailbox && c.mailbox.exists > 0) await c.messageDelete('1:*');
      } finally {
        lock.release();
      }
    });
  }

  async count(): Promise<number> {
    return this.with(async (c) => {
      const s = await c.status('INBOX', { messages: true });
      return s ? (s.messages ?? 0) : 0;
    });
  }

  /** Waits until postfix has delivered exactly `n` messages; their raw sources. */
  async awaitDelivered(n: number, what: string): Promise<Buffer[]> {
    const until = Date.now() + DELIVERY_MS;
    while ((await this.count()) < n && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    // a moment more: a copy too many (a resend) would turn up now
    await new Promise((r) => setTimeout(r, 500));
    const got = await this.count();
    if (got !== n) {
      throw new BenchMismatch(
        what,
        `${got} messages in the office INBOX ${DELIVERY_MS / 1000} s after the send, expected ${n}`,
      );
    }
    return this.with(async (c) => {
      const lock = await c.getMailboxLock('INBOX', { readOnly: true });
      try {
        const msgs = await c.fetchAll('1:*', { source: true });
        return msgs.map((m) => m.source!);
      } finally {
        lock.release();
      }
    });
  }

  async append(raws: Buffer[]): Promise<void> {
    await this.with(async (c) => {
      for (const raw of raws) await c.append('INBOX', raw);
    });
  }
}

/** Each delivered message carries one package's bytes under its name: all of them, each once. */
async function verifyMessages(raws: Buffer[], expected: Map<string, string>, what: string): Promise<void> {
  const seen = new Map<string, string>();
  for (const raw of raws) {
    const mail = await simpleParser(raw);
    for (const att of mail.attachments) {
      const name = att.filename ?? '(no name)';
      if (seen.has(name)) throw new BenchMismatch(what, `${name} arrived twice`);
      seen.set(name, sha256(att.content));
    }
  }
  for (const [name, sum] of expected) {
    const got = seen.get(name);
    if (got === undefined) throw new BenchMismatch(what, `no delivered message carries ${name}`);
    if (got !== sum) throw new BenchMismatch(what, `${name}: sha256 ${got}, the source's is ${sum}`);
  }
  if (seen.size !== expected.size) {
    throw new BenchMismatch(what, `${seen.size} attachments delivered, expected ${expected.size}`);
  }
}

/**
 * sprelay's out-route (one `once`) against swaks (one message per package), `runs` times each.
 * Returns the messages of sprelay's first run as delivered: the fetch workloads use them.
 */
export async function measureSend(
  ctx: BenchContext,
  row: Row,
  a: MailAccounts,
  box: Mailbox,
  ep: MailEndpoint,
  w: Workload,
  id: string,
): Promise<Buffer[]> {
  let captured: Buffer[] = [];
  for (let r = 1; r <= ctx.runs; r++) {
    await box.reset();
    {
      const dir = join(ctx.work, `${id}-sprelay-${r}`);
      const outbox = join(dir, 'outbox');
      await placeCopy(w, outbox);
      const config = join(dir, 'sprelay.yaml');
      writeConfig(
        config,
        configYaml({
          profile: {
            type: 'email',
            from: a.station.address,
            smtp: {
              host: ep.host,
              port: ep.smtpPort,
              security: 'starttls',
              user: a.station.user,
              password: '${SMTP_PASSWORD}',
            },
            tls: { ca: a.ca },
          },
          route: { name: 'export', direction: 'out', local: outbox, to: [a.office.address] },
        }),
      );
      const s = await sprelayOnce(ctx.build, config, { SMTP_PASSWORD: a.station.password }, join(dir, 'sprelay.log'));
      const what = `${row.workload}, sprelay run ${r}`;
      await verifyEmpty(outbox, `${what}: the outbox after a cycle`);
      const raws = await box.awaitDelivered(w.files.size, what);
      await verifyMessages(raws, w.files, what);
      if (captured.length === 0) captured = raws;
      row.sprelay.push(s);
      progress(row, 'sprelay', r, ctx.runs, s);
      await rm(dir, { recursive: true, force: true });
    }
    await box.reset();
    {
      const dir = join(ctx.work, `${id}-swaks-${r}`);
      await mkdir(dir, { recursive: true });
      const steps = [...w.files.keys()].map((name) => ({
        cmd: 'swaks',
        args: [
          '--silent',
          '2',
          '--server',
          ep.host,
          '--port',
          String(ep.smtpPort),
          '--tls',
          '--tls-verify',
          '--tls-ca-path',
          a.ca,
          '--auth',
          'PLAIN',
          '--auth-user',
          a.station.user,
          '--auth-password',
          a.station.password,
          '--from',
          a.station.address,
          '--to',
          a.office.address,
          '--header',
          `Subject: ${name}`,
          '--attach-type',
          'application/xml',
          '--attach-name',
          name,
          '--attach',
          `@${join(w.dir, name)}`,
        ],
      }));
      const s = await timedSeries(steps, join(dir, 'swaks.log'));
      const what = `${row.workload}, swaks run ${r}`;
      await verifyMessages(await box.awaitDelivered(w.files.size, what), w.files, what);
      row.peer('swaks').samples.push(s);
      progress(row, 'swaks', r, ctx.runs, s);
      await rm(dir, { recursive: true, force: true });
    }
  }
  await box.reset();
  return captured;
}

/** sprelay's in-route (one `once`) against mbsync + munpack, on a mailbox filled with `messages`. */
export async function measureFetch(
  ctx: BenchContext,
  row: Row,
  a: MailAccounts,
  box: Mailbox,
  ep: MailEndpoint,
  w: Workload,
  messages: Buffer[],
  id: string,
): Promise<void> {
  if (messages.length !== w.files.size) {
    throw new Error(
      `${row.workload}: needs the ${w.files.size} messages of a sprelay send run (got ${messages.length})`,
    );
  }
  for (let r = 1; r <= ctx.runs; r++) {
    await box.reset();
    await box.append(messages);
    {
      const dir = join(ctx.work, `${id}-sprelay-${r}`);
      const inbox = join(dir, 'inbox');
      await mkdir(inbox, { recursive: true });
      const config = join(dir, 'sprelay.yaml');
      writeConfig(
        config,
        configYaml({
          profile: {
            type: 'email',
            imap: {
              host: ep.host,
              port: ep.imapPort,
              security: 'starttls',
              user: a.office.user,
              password: '${IMAP_PASSWORD}',
            },
            tls: { ca: a.ca },
          },
          route: { name: 'import', direction: 'in', remote: 'INBOX', local: inbox, allowFrom: [a.station.address] },
        }),
      );
      const s = await sprelayOnce(ctx.build, config, { IMAP_PASSWORD: a.office.password }, join(dir, 'sprelay.log'));
      const what = `${row.workload}, sprelay run ${r}`;
      await verifyExact(inbox, w.files, what);
      const left = await box.count();
      if (left !== 0)
        throw new BenchMismatch(what, `${left} messages still in the INBOX after the cycle (afterReceive: delete)`);
      row.sprelay.push(s);
      progress(row, 'sprelay', r, ctx.runs, s);
      await rm(dir, { recursive: true, force: true });
    }
    await box.reset();
    await box.append(messages);
    {
      const dir = join(ctx.work, `${id}-mbsync-${r}`);
      const s = await mbsyncMunpack(a, ep, dir);
      await verifyContent(join(dir, 'unpacked'), w.files, `${row.workload}, mbsync + munpack run ${r}`);
      row.peer('mbsync + munpack').samples.push(s);
      progress(row, 'mbsync + munpack', r, ctx.runs, s);
      await rm(dir, { recursive: true, force: true });
    }
  }
  await box.reset();
}

/** mbsync pulls the INBOX into a Maildir, then munpack unpacks every message: timed as one. */
async function mbsyncMunpack(a: MailAccounts, ep: MailEndpoint, dir: string): Promise<Sample> {
  const maildir = join(dir, 'maildir');
  const unpacked = join(dir, 'unpacked');
  await mkdir(maildir, { recursive: true });
  await mkdir(unpacked, { recursive: true });
  const rc = join(dir, 'mbsyncrc');
  writeFileSync(
    rc,
    [
      'IMAPAccount office',
      // isync 1.4 checks the certificate by a DNS name only (no IP SANs): localhost is 127.0.0.1 here
      `Host ${ep.host === '127.0.0.1' ? 'localhost' : ep.host}`,
      `Port ${ep.imapPort}`,
      `User ${a.office.user}`,
      `Pass "${a.office.password.replace(/(["\\])/g, '\\$1')}"`,
      'SSLType STARTTLS',
      `CertificateFile ${a.ca}`,
      '',
      'IMAPStore office-remote',
      'Account office',
      '',
      'MaildirStore office-local',
      `Path ${maildir}/`,
      `Inbox ${maildir}/INBOX`,
      '',
      'Channel office',
      'Far :office-remote:',
      'Near :office-local:',
      'Patterns INBOX',
      'Create Near',
      'Sync Pull',
      'SyncState *',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const script = join(dir, 'fetch.sh');
  writeFileSync(
    script,
    [
      'set -e',
      `mbsync -q -c ${rc} office`,
      `for f in ${maildir}/INBOX/new/* ${maildir}/INBOX/cur/*; do`,
      '  [ -f "$f" ] || continue',
      `  munpack -q -C ${unpacked} "$f" >/dev/null`,
      'done',
      '',
    ].join('\n'),
  );
  return timed('bash', [script], join(dir, 'fetch.log'));
}

// ---- W3 -----------------------------------------------------------------------------------------------

/** W3: `count` packages of 100 KB sent (one message each) and fetched. */
export async function runW3(ctx: BenchContext, a: MailAccounts, count: number): Promise<void> {
  const w = await smallSet(join(ctx.work, 'w3-source'), count, 100 * 1024, 'SHIFTREPORT_17');
  const box = new Mailbox(a);
  const ep: MailEndpoint = { label: 'loopback', host: a.host, smtpPort: a.smtpPort, imapPort: a.imapPort };
  const send = ctx.results.row('W3', `W3 ${count} x 100 KB e-mail, send`, { ratio: 1.0, vs: 'swaks' });
  const messages = await measureSend(ctx, send, a, box, ep, w, 'w3-send');
  const fetch = ctx.results.row('W3', `W3 ${count} x 100 KB e-mail, fetch`, { ratio: 1.5, vs: 'mbsync + munpack' });
  await measureFetch(ctx, fetch, a, box, ep, w, messages, 'w3-fetch');
}
