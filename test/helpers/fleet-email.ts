// A fleet whose receipts travel by e-mail (issue 12: "over any transport, e-mail included"): N
// station agents and one office agent, each with its own config, data folder and ledger.
//
//   station STnn: export (out, lan) -> from-stations/STnn (+ a heartbeat every hour);
//                 receipts-in (in, e-mail) <- the INBOX of its own IMAP account (one in-process
//                 IMAP server per station: hoodiecrow has one user per server) into ./import
//                 (SERVIO's import folder), allowFrom the office's address, taken messages moved
//                 to Processed
//   office:       from-stations (in, lan) <- from-stations/* into ./in/{station};
//                 receipts (out, e-mail) -> SMTP (one in-process server), to "{station}@stations.test"
//
// There is no MTA between the SMTP server and the mailboxes: `deliver()` does its work, handing
// every message the SMTP server took to the IMAP server of each envelope recipient (and refusing to
// guess where a message for an unknown address goes). Everything over STARTTLS with a test CA.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../agent/agent.js';
import type { Config } from '../../agent/config.js';
import { startImapServer, type TestImapServer } from '../servers/imap-server.js';
import { startSmtpServer, type ReceivedMail, type TestSmtpServer } from '../servers/smtp-server.js';
import { makeTestTls, type TestTls } from '../servers/tls.js';
import { fleetMember, stationName } from './fleet.js';

export const OFFICE_ADDRESS = 'office@office.test';
export const STATIONS_DOMAIN = 'stations.test';

export interface MailFleetMember {
  name: string;
  dir: string;
  configFile: string;
  config: Config;
  env: Record<string, string>;
  agent(): Agent;
}

export interface MailFleetStation extends MailFleetMember {
  export: string;
  import: string;
  /** Its mailbox's address (what `{station}@stations.test` becomes). */
  address: string;
  imap: TestImapServer;
}

export interface MailFleet {
  stations: MailFleetStation[];
  office: MailFleetMember & { inOf(station: string): string };
  smtp: TestSmtpServer;
  /** The lan share's folder of `rel` (from-stations/ST01). */
  remoteDir(rel: string): string;
  /** The clock every agent of the fleet reads (ms); tests move it forward. */
  clock: { now: number };
  /**
   * The MTA: every message the SMTP server took since the last call lands in the INBOX of each of
   * its envelope recipients (the messages stay in smtp.messages). Returns the messages handed on.
   */
  deliver(): ReceivedMail[];
  close(): Promise<void>;
}

export async function makeMailFleet(n: number): Promise<MailFleet> {
  const root = mkdtempSync(join(tmpdir(), 'sprelay-mailfleet-'));
  const tls: TestTls = await makeTestTls();
  const ca = join(root, 'ca.pem');
  writeFileSync(ca, tls.caPem);
  const env: Record<string, string> = { SMTP_PASSWORD: 'smtp-office-4711', IMAP_PASSWORD: 'imap-station-0815' };
  const smtp = await startSmtpServer({ security: 'starttls', tls, users: { office: env.SMTP_PASSWORD! } });
  const share = join(root, 'share');
  mkdirSync(share);
  const lan = `    type: lan\n    root: ${JSON.stringify(share)}`;
  const clock = { now: Date.now() };

  const member = (name: string, yaml: string): MailFleetMember => fleetMember(root, name, yaml, env, () => clock.now);

  const stations: MailFleetStation[] = [];
  const imaps: TestImapServer[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const name = stationName(i);
      const imap = await startImapServer({
        security: 'starttls',
        tls,
        user: name.toLowerCase(),
        password: env.IMAP_PASSWORD!,
        mailboxes: ['Processed'],
      });
      imaps.push(imap);
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
  office:
${lan}
  mail:
    type: email
    imap: { host: 127.0.0.1, port: ${imap.port}, security: starttls, user: ${imap.user}, password: \${IMAP_PASSWORD} }
    tls: { ca: ${JSON.stringify(ca)} }
routes:
  - name: export
    direction: out
    profile: office
    local: ./export
    remote: from-stations/${name}
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
      const st = {
        ...m,
        export: join(m.dir, 'export'),
        import: join(m.dir, 'import'),
        address: `${name}@${STATIONS_DOMAIN}`,
        imap,
      };
      mkdirSync(st.export);
      mkdirSync(st.import);
      stations.push(st);
    }
  } catch (err) {
    await Promise.all(imaps.map((s) => s.close()));
    await smtp.close();
    throw err;
  }

  const office = member(
    'office',
    `station: OFFICE
dataDir: ./data
settle: 100ms
timeout: 10s
receipts: receipts
profiles:
  office:
${lan}
  mail:
    type: email
    from: ${OFFICE_ADDRESS}
    smtp: { host: 127.0.0.1, port: ${smtp.port}, security: starttls, user: office, password: \${SMTP_PASSWORD} }
    tls: { ca: ${JSON.stringify(ca)} }
routes:
  - name: from-stations
    direction: in
    profile: office
    local: ./in/{station}
    remote: from-stations/*
    schedule: "* * * * *"
  - name: receipts
    direction: out
    profile: mail
    local: ./receipts-outbox
    to: ["{station}@${STATIONS_DOMAIN}"]
    schedule: "* * * * *"
`,
  );
  mkdirSync(join(office.dir, 'in'));
  mkdirSync(join(office.dir, 'receipts-outbox'));

  let handedOn = 0;
  return {
    stations,
    office: { ...office, inOf: (station) => join(office.dir, 'in', station) },
    smtp,
    remoteDir: (rel) => join(share, ...rel.split('/')),
    clock,
    deliver: () => {
      const fresh = smtp.messages.slice(handedOn);
      for (const m of fresh) {
        for (const rcpt of m.to) {
          const st = stations.find((s) => s.address.toLowerCase() === rcpt.toLowerCase());
          if (!st) throw new Error(`the MTA has no mailbox for ${rcpt}`);
          st.imap.append('INBOX', m.raw);
        }
      }
      handedOn = smtp.messages.length;
      return fresh;
    },
    close: async () => {
      await Promise.all(stations.map((s) => s.imap.close()));
      await smtp.close();
      await tls.cleanup();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** One `once` of an agent (all its routes), closed after. */
export { onceOf as mailOnceOf } from './fleet.js';
