// A reference for the ftp and sftp rows, beside durable-steps.mjs on the lan rows: the project's
// own transfer library (basic-ftp, ssh2-sftp-client) used plainly, plus the same local
// file-system steps of the guarantees, and nothing else: no ledger, no XML check, no SHA-256, no
// logging, no deadlines. What a courier in Node that keeps the guarantees gets from these
// libraries as they come. Not a floor: sprelay's own use of them (lanes opened as needed, SFTP
// requests pipelined, its writes gathered per turn) is faster on several rows. Shown in
// brackets in BENCH.md, never the ratio's peer.
// Plain JavaScript run by plain `node`, so that its time counts Node's start as sprelay's does.
//
//   ftp|sftp out SRC REMOTE WORK   SRC is an outbox (emptied), REMOTE the server's folder (made)
//   ftp|sftp in  REMOTE DST        REMOTE is read and emptied (the acknowledgement), DST the inbox
// The server from the environment: FLOOR_HOST, FLOOR_PORT, FLOOR_USER, FLOOR_PASSWORD and, for
// ftp, FLOOR_CA (explicit TLS, verified against it), for sftp FLOOR_HOSTKEY (SHA256:... pinned).
//
// Per package, out: the outbox file read; copied into WORK/spool/.tmp, fsynced, renamed into the
// spool; the outbox copy removed (all as durable-steps.mjs); sent from the spool file to
// REMOTE/NAME.part and renamed to NAME on the server; the spool copy renamed into WORK/archive.
// Per package, in: downloaded into .NAME.part in the inbox, fsynced, linked to NAME and unlinked;
// the server's file deleted. The library's own calls for a file: basic-ftp's uploadFrom and
// downloadTo (into a file created exclusively), ssh2-sftp-client's fastPut and fastGet (many
// requests in flight; its get into a buffer took a 200 MB file in twice the time here).
// Folders fsynced once per run. PACKAGES_AT_ONCE packages at once, as
// sprelay's default concurrency: on ftp each on its own control connection, on sftp all on one
// SSH connection (as sprelay does). TCP_NODELAY on the SSH socket, as sprelay sets it (without it
// each request waits out delayed ACKs: 145 ms per 20 KB get here).
import { createHash } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, rootCertificates } from 'node:tls';
import { Client as FtpClient } from 'basic-ftp';
import SftpClient from 'ssh2-sftp-client';
import { archiveSpool, eachAtOnce, landInInbox, PACKAGES_AT_ONCE, syncPath, takeIntoSpool } from './local-steps.mjs';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`library-steps.mjs: ${name} is not set`);
  return v;
}

// ---- the two libraries, each behind the same four calls ------------------------------------------

/** PACKAGES_AT_ONCE basic-ftp clients (lanes), each logged in with explicit TLS. */
async function ftpLanes() {
  const secureContext = createSecureContext({ ca: [...rootCertificates, await fsp.readFile(env('FLOOR_CA'), 'utf8')] });
  const lanes = await Promise.all(
    Array.from({ length: PACKAGES_AT_ONCE }, async () => {
      const c = new FtpClient(30_000);
      await c.access({
        host: env('FLOOR_HOST'),
        port: Number(env('FLOOR_PORT')),
        user: env('FLOOR_USER'),
        password: env('FLOOR_PASSWORD'),
        secure: true,
        secureOptions: { secureContext },
      });
      return c;
    }),
  );
  return {
    list: async (dir) => (await lanes[0].list(dir)).filter((e) => e.isFile).map((e) => e.name),
    ensureDir: async (dir) => {
      const home = await lanes[0].pwd();
      await lanes[0].ensureDir(dir); // leaves the lane in dir
      await lanes[0].cd(home);
    },
    put: async (l, local, part, file) => {
      await lanes[l].uploadFrom(local, part);
      await lanes[l].rename(part, file);
    },
    get: async (l, file, to) => {
      const out = createWriteStream(to, { flags: 'wx', mode: 0o600 });
      await lanes[l].downloadTo(out, file);
      if (!out.closed) await new Promise((resolve, reject) => out.once('close', resolve).once('error', reject));
      await syncPath(to, 'r+');
    },
    remove: (l, file) => lanes[l].remove(file),
    close: async () => lanes.forEach((c) => c.close()),
  };
}

/** One ssh2-sftp-client connection, the host key pinned, shared by every package. */
async function sftpConnection() {
  const pin = env('FLOOR_HOSTKEY').replace(/=+$/, '');
  const c = new SftpClient();
  await c.connect({
    host: env('FLOOR_HOST'),
    port: Number(env('FLOOR_PORT')),
    username: env('FLOOR_USER'),
    password: env('FLOOR_PASSWORD'),
    hostVerifier: (key) => `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}` === pin,
  });
  c.client._sock?.setNoDelay(true);
  return {
    list: async (dir) => (await c.list(dir)).filter((e) => e.type === '-').map((e) => e.name),
    ensureDir: (dir) => c.mkdir(dir, true),
    put: async (_l, local, part, file) => {
      await c.fastPut(local, part);
      await c.rename(part, file);
    },
    get: async (_l, file, to) => {
      await c.fastGet(file, to);
      await syncPath(to, 'r+');
    },
    remove: (_l, file) => c.delete(file),
    close: () => c.end(),
  };
}

// ---- the two directions ---------------------------------------------------------------------------

async function out(server, src, remote, work) {
  const names = await takeIntoSpool(src, work);
  await server.ensureDir(remote);
  await eachAtOnce(names, (name, _i, lane) =>
    server.put(lane, join(work, 'spool', name), `${remote}/${name}.part`, `${remote}/${name}`),
  );
  await archiveSpool(names, work);
}

async function into(server, remote, dst) {
  await fsp.mkdir(dst, { recursive: true });
  const names = (await server.list(remote)).sort();
  await landInInbox(names, dst, (name, part, lane) => server.get(lane, `${remote}/${name}`, part));
  await eachAtOnce(names, (name, _i, lane) => server.remove(lane, `${remote}/${name}`));
}

const [kind, mode, ...args] = process.argv.slice(2);
const usage = 'usage: library-steps.mjs ftp|sftp out SRC REMOTE WORK | ftp|sftp in REMOTE DST\n';
if (
  (kind !== 'ftp' && kind !== 'sftp') ||
  !((mode === 'out' && args.length === 3) || (mode === 'in' && args.length === 2))
) {
  process.stderr.write(usage);
  process.exit(2);
}
const server = kind === 'ftp' ? await ftpLanes() : await sftpConnection();
try {
  if (mode === 'out') await out(server, args[0], args[1], args[2]);
  else await into(server, args[0], args[1]);
} finally {
  await server.close();
}
