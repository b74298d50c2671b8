// The 3G-like link: the same servers behind latency proxies (scripts/bench/latency-proxy.ts) that
// add 50 ms each way (100 ms of round trip, and a round trip more per new connection), sprelay and
// its peers through the same proxy: sftp and ftp both directions with many small packages and
// one larger file, e-mail send and fetch with the small ones.
import net from 'node:net';
import { join } from 'node:path';
import { cleanup } from './cleanup.js';
import { bigXml, smallSet } from './data.js';
import { measureIn, measureOut, mb, type Remote } from './files.js';
import { LatencyProxy } from './latency-proxy.js';
import { measureFetch, measureSend, Mailbox, type MailAccounts, type MailEndpoint } from './mail.js';
import type { BenchContext, Row } from './measure.js';
import type { FileServers } from './servers.js';

export const ONE_WAY_MS = 50;

export interface LinkProxies {
  sftp: LatencyProxy;
  ftp: LatencyProxy;
  smtp: LatencyProxy | null;
  imap: LatencyProxy | null;
  /** What the check of the link measured (for BENCH.md). */
  check: string;
}

/** ms from connect() to the server's first byte (its greeting). */
function greetingMs(host: string, port: number): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no greeting from ${host}:${port} within 5 s`));
    }, 5000);
    s.once('data', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
      s.destroy();
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * The link is what it claims: sshd's greeting takes 2 round trips through the proxy (the
 * handshake's and the greeting's way back), about 1 ms straight to the server.
 */
async function checkLink(files: FileServers, sftp: LatencyProxy): Promise<string> {
  const direct = await greetingMs('127.0.0.1', Number(files.env.SFTP_PORT));
  const proxied = await greetingMs(sftp.host, sftp.port);
  const expected = 4 * ONE_WAY_MS;
  if (proxied < expected * 0.95 || proxied > expected * 1.5 + direct) {
    throw new Error(
      `the latency proxy is off: sshd's greeting came after ${proxied.toFixed(0)} ms through it, expected about ${expected} ms`,
    );
  }
  return `sshd's greeting ${proxied.toFixed(0)} ms after connect() through the proxy, ${direct.toFixed(1)} ms straight`;
}

/** One proxy per server on 127.0.0.1 (ftp: its control port and the link vsftpd's passive ports). */
export async function startLinkProxies(files: FileServers, mail: MailAccounts | null): Promise<LinkProxies> {
  const start = async (opts: Parameters<typeof LatencyProxy.start>[0]) => {
    const p = await LatencyProxy.start(opts);
    cleanup.add(`close the latency proxy on ${p.host}:${p.port}`, () => p.close());
    return p;
  };
  const sftp = await start({ target: { host: '127.0.0.1', port: Number(files.env.SFTP_PORT) }, oneWayMs: ONE_WAY_MS });
  const ftp = await start({
    target: { host: files.linkFtp.host, port: files.linkFtp.port },
    oneWayMs: ONE_WAY_MS,
    dataPorts: { ports: files.linkFtp.pasvPorts, targetHost: files.linkFtp.host },
  });
  const smtp = mail ? await start({ target: { host: mail.host, port: mail.smtpPort }, oneWayMs: ONE_WAY_MS }) : null;
  const imap = mail ? await start({ target: { host: mail.host, port: mail.imapPort }, oneWayMs: ONE_WAY_MS }) : null;
  return { sftp, ftp, smtp, imap, check: await checkLink(files, sftp) };
}

/** The row's connections went through the proxy (ftp: its data connections too). */
function throughProxy(row: Row, proxy: LatencyProxy, before: { control: number; data: number }, data: boolean): void {
  if (proxy.accepted.control === before.control || (data && proxy.accepted.data === before.data)) {
    throw new Error(
      `${row.workload}: no ${proxy.accepted.control === before.control ? '' : 'data '}connection passed the latency proxy: the link was not measured`,
    );
  }
}

export async function runLink(
  ctx: BenchContext,
  proxies: LinkProxies,
  remotes: { ftp: Remote; sftp: Remote },
  mail: MailAccounts | null,
  sizes: { count: number; bigBytes: number },
): Promise<void> {
  const target = { ratio: 1.2, vs: 'rclone copy' };
  const small = await smallSet(join(ctx.work, 'link-small-source'), sizes.count, 20 * 1024);
  const big = await bigXml(join(ctx.work, 'link-big-source'), sizes.bigBytes);
  for (const [w, title] of [
    [small, `link ${sizes.count} x 20 KB`],
    [big, `link one ${mb(sizes.bigBytes)}`],
  ] as const) {
    for (const [remote, proxy] of [
      [remotes.sftp, proxies.sftp],
      [remotes.ftp, proxies.ftp],
    ] as const) {
      const id = `link-${w === small ? 'small' : 'big'}-${remote.label}`;
      for (const direction of ['out', 'in'] as const) {
        const row = ctx.results.row('link', `${title}, ${remote.label} ${direction}`, target);
        const before = { ...proxy.accepted };
        if (direction === 'out') await measureOut(ctx, row, remote, w, `${id}-out`);
        else await measureIn(ctx, row, remote, w, `${id}-in`);
        throughProxy(row, proxy, before, remote.label === 'ftp');
      }
    }
  }
  if (mail && proxies.smtp && proxies.imap) {
    const box = new Mailbox(mail);
    const ep: MailEndpoint = {
      label: 'link',
      host: '127.0.0.1',
      smtpPort: proxies.smtp.port,
      imapPort: proxies.imap.port,
    };
    const send = ctx.results.row('link', `link ${sizes.count} x 20 KB e-mail, send`, {});
    let before = { ...proxies.smtp.accepted };
    const messages = await measureSend(ctx, send, mail, box, ep, small, 'link-mail-send');
    throughProxy(send, proxies.smtp, before, false);
    const fetch = ctx.results.row('link', `link ${sizes.count} x 20 KB e-mail, fetch`, {
      ratio: 2,
      vs: 'mbsync + munpack',
    });
    before = { ...proxies.imap.accepted };
    await measureFetch(ctx, fetch, mail, box, ep, small, messages, 'link-mail-fetch');
    throughProxy(fetch, proxies.imap, before, false);
  }
}
