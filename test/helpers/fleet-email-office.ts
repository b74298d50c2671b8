// A fleet where everything travels by e-mail (issue 12, "an office that takes packages by e-mail
// and answers with receipts"): N station agents and one office agent, each with its own config,
// data folder and ledger.
//
//   station STnn: export (out, e-mail) -> SMTP, to office@office.test, from STnn@stations.test
//                 (the SMTP sink writes X-SPRelay-Station: STnn); a heartbeat every hour on it;
//                 receipts-in (in, e-mail) <- the INBOX of its own IMAP account into ./import,
//                 allowFrom the office's address, taken messages moved to Processed
//   office:       from-stations (in, e-mail) <- the INBOX of the office's IMAP account into ./in
//                 (one folder: an e-mail route has no folder per station), allowFrom every
//                 station's address, taken messages moved to Processed; `receipts: receipts`;
//                 receipts (out, e-mail) -> SMTP, to "{station}@stations.test"
//
// One in-process SMTP server (STARTTLS, AUTH: one user per agent) takes every message; there is
// no MTA behind it: `deliver()` hands each message the server took to the IMAP server of each
// envelope recipient (one hoodiecrow server per mailbox: it has one user per server) and refuses
// to guess where a message for an unknown address goes.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer, { type Transporter } from 'nodemailer';
import { startImapServer, type TestImapServer } from '../servers/imap-server.js';
import { startSmtpServer, type ReceivedMail, type TestSmtpServer } from '../servers/smtp-server.js';
import { makeTestTls, type TestTls } from '../servers/tls.js';
import { OFFICE_ADDRESS, STATIONS_DOMAIN, type MailFleetMember, type MailFleetStation } from './fleet-email.js';
import { fleetMember, stationName } from './fleet.js';

export interface MailOfficeOptions {
  /** Stations whose e-mail profile bundles (maxPerMessage): several packages in one message. */
  bundle?: { stations: string[]; maxPerMessage: number };
  /**
   * The office's allowFrom: every station's address (default), or one `{station}@...` pattern that
   * binds each station to its sender address.
   */
  allowFrom?: 'addresses' | 'pattern';
}

export interface MailOffice {
  stations: MailFleetStation[];
  office: MailFleetMember & { inbox: string; imap: TestImapServer };
  smtp: TestSmtpServer;
  /** The SMTP password every agent logs in with (each as its own user: office, st01, ...). */
  smtpPassword: string;
  /** The CA file the agents trust. */
  caFile: string;
  /** The clock every agent reads (ms). */
  clock: { now: number };
  /** The MTA: every message taken since the last call lands in the INBOX of each envelope recipient. */
  deliver(): ReceivedMail[];
  /** A mailer logged in to the office's SMTP server as `station` (a message not made by an agent). */
  mailerAs(station: MailFleetStation): Transporter;
  close(): Promise<void>;
}

export const stationAddress = (name: string): string => `${name}@${STATIONS_DOMAIN}`;

export async function makeMailOffice(n: number, opts: MailOfficeOptions = {}): Promise<MailOffice> {
  const root = mkdtempSync(join(tmpdir(), 'sprelay-mailoffice-'));
  const tls: TestTls = await makeTestTls();
  const ca = join(root, 'ca.pem');
  writeFileSync(ca, tls.caPem);
  const env: Record<string, string> = { SMTP_PASSWORD: 'smtp-agent-4711', IMAP_PASSWORD: 'imap-box-0815' };
  const names = Array.from({ length: n }, (_, i) => stationName(i));
  const users: Record<string, string> = { office: env.SMTP_PASSWORD! };
  for (const name of names) users[name.toLowerCase()] = env.SMTP_PASSWORD!;
  const clock = { now: Date.now() };
  const servers: { close(): Promise<void> }[] = [];
  const smtp = await startSmtpServer({ security: 'starttls', tls, users });
  servers.push(smtp);

  const member = (name: string, yaml: string): MailFleetMember => fleetMember(root, name, yaml, env, () => clock.now);
  const imapOf = async (user: string) => {
    const s = await startImapServer({
      security: 'starttls',
      tls,
      user,
      password: env.IMAP_PASSWORD!,
      mailboxes: ['Processed'],
    });
    servers.push(s);
    return s;
  };
  const profile = (from: string, user: string, imap: TestImapServer, extra = '') => `  mail:
    type: email
    from: ${from}
    smtp: { host: 127.0.0.1, port: ${smtp.port}, security: starttls, user: ${user}, password: \${SMTP_PASSWORD} }
    imap: { host: 127.0.0.1, port: ${imap.port}, security: starttls, user: ${imap.user}, password: \${IMAP_PASSWORD} }
    tls: { ca: ${JSON.stringify(ca)} }${extra}`;

  try {
    const stations: MailFleetStation[] = [];
    for (const name of names) {
      const imap = await imapOf(name.toLowerCase());
      const address = stationAddress(name);
      const bundled = opts.bundle?.stations.includes(name) ? `\n    maxPerMessage: ${opts.bundle.maxPerMessage}` : '';
      const m = member(
        name,
        `station: ${name}
dataDir: ./data
settle: 100ms
timeout: 10s
heartbeat:
  route: export
  every: 1h
profiles:
${profile(address, name.toLowerCase(), imap, bundled)}
routes:
  - name: export
    direction: out
    profile: mail
    local: ./export
    to: [${OFFICE_ADDRESS}]
    schedule: "* * * * *"
    confirmWithin: 1h
  - name: receipts-in
    direction: in
    profile: mail
    remote: INBOX
    local: ./import
    allowFrom: [${OFFICE_ADDRESS}]
    afterReceive: move:Processed
    schedule: "* * * * *"
`,
      );
      const st = { ...m, export: join(m.dir, 'export'), import: join(m.dir, 'import'), address, imap };
      mkdirSync(st.export);
      mkdirSync(st.import);
      stations.push(st);
    }

    const officeImap = await imapOf('office');
    const office = member(
      'office',
      `station: OFFICE
dataDir: ./data
settle: 100ms
timeout: 10s
receipts: receipts
profiles:
${profile(OFFICE_ADDRESS, 'office', officeImap)}
routes:
  - name: from-stations
    direction: in
    profile: mail
    remote: INBOX
    local: ./in
    allowFrom: [${opts.allowFrom === 'pattern' ? `"{station}@${STATIONS_DOMAIN}"` : stations.map((s) => s.address).join(', ')}]
    afterReceive: move:Processed
    schedule: "* * * * *"
  - name: receipts
    direction: out
    profile: mail
    local: ./receipts-outbox
    to: ["{station}@${STATIONS_DOMAIN}"]
    schedule: "* * * * *"
`,
    );
    const inbox = join(office.dir, 'in');
    mkdirSync(inbox);
    mkdirSync(join(office.dir, 'receipts-outbox'));

    const mailboxOf = (rcpt: string): TestImapServer => {
      const r = rcpt.toLowerCase();
      if (r === OFFICE_ADDRESS) return officeImap;
      const st = stations.find((s) => s.address.toLowerCase() === r);
      if (!st) throw new Error(`the MTA has no mailbox for ${rcpt}`);
      return st.imap;
    };
    let handedOn = 0;
    return {
      stations,
      office: { ...office, inbox, imap: officeImap },
      smtp,
      smtpPassword: env.SMTP_PASSWORD!,
      caFile: ca,
      clock,
      deliver: () => {
        const fresh = smtp.messages.slice(handedOn);
        for (const m of fresh) for (const rcpt of m.to) mailboxOf(rcpt).append('INBOX', m.raw);
        handedOn = smtp.messages.length;
        return fresh;
      },
      mailerAs: (station) =>
        nodemailer.createTransport({
          host: '127.0.0.1',
          port: smtp.port,
          secure: false,
          requireTLS: true,
          tls: { ca: tls.caPem },
          auth: { user: station.name.toLowerCase(), pass: env.SMTP_PASSWORD! },
        }),
      close: async () => {
        await Promise.all(servers.map((s) => s.close()));
        await tls.cleanup();
        rmSync(root, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await Promise.all(servers.map((s) => s.close()));
    await tls.cleanup();
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
}
