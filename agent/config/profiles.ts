// Profiles: one schema per transport type, then what needs more than one field (password or
// passwordFile, CA and key files read from disk, e-mail server defaults).
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import type {
  EmailProfile,
  FtpProfile,
  LanProfile,
  MailServer,
  ProfileOptions,
  SftpProfile,
  TlsOptions,
} from '../../transports/types.js';
import { describeType, formatPath, type Issues, type Seg } from './messages.js';
import { describeFsError, isRecord, looksLikeKeyText, resolveLocalPath } from './paths.js';
import { emailSchema, ftpSchema, lanSchema, type mailServerSchema, sftpSchema } from './schemas.js';
import type { DeferredSecret } from './types.js';

// ---- profiles ------------------------------------------------------------------------------------

export interface Ctx {
  baseDir: string;
  issues: Issues;
  secrets: Set<string>;
  /** passwordFile entries, per profile name, read when the transport connects. */
  files: Map<string, DeferredSecret[]>;
}

/** `password` or `passwordFile` (not both, and one is needed where `required`). */
function passwordSource(
  raw: Record<string, unknown>,
  segs: Seg[],
  key: string[],
  ctx: Ctx,
  required: boolean,
  why = 'required',
): void {
  const has = raw.password !== undefined;
  const file = raw.passwordFile;
  if (has && file !== undefined)
    ctx.issues.add([...segs, 'passwordFile'], 'give "password" or "passwordFile", not both');
  if (!has && file === undefined && required) ctx.issues.add([...segs, 'password'], `${why} (or "passwordFile")`);
  if (typeof file !== 'string' || file === '') return;
  const profile = String(segs[1]);
  const list = ctx.files.get(profile) ?? [];
  list.push({
    key,
    path: formatPath([...segs, 'passwordFile']),
    from: { file: resolveLocalPath(file, ctx.baseDir) },
  });
  ctx.files.set(profile, list);
}

/** A CA bundle or private key: a file path (relative to the config folder) or the PEM text itself. */
function loadText(value: unknown, segs: Seg[], kind: 'ca' | 'key', ctx: Ctx): string | undefined | null {
  if (typeof value !== 'string' || value === '') return null; // absent or already reported by the schema
  if (looksLikeKeyText(value)) return value;
  const file = resolveLocalPath(value, ctx.baseDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    ctx.issues.add(segs, `cannot read file "${file}": ${describeFsError(e)}`);
    return undefined;
  }
  if (kind === 'ca' && !text.includes('-----BEGIN')) {
    ctx.issues.add(segs, `file "${file}" is not a PEM certificate (expected -----BEGIN CERTIFICATE-----)`);
    return undefined;
  }
  if (kind === 'key' && !looksLikeKeyText(text)) {
    ctx.issues.add(
      segs,
      `file "${file}" does not look like a private key (expected an OpenSSH, PEM or PuTTY key file)`,
    );
    return undefined;
  }
  if (kind === 'key') ctx.secrets.add(text);
  return text;
}

function loadTls(raw: unknown, segs: Seg[], ctx: Ctx): TlsOptions | undefined {
  if (raw === undefined) return { rejectUnauthorized: true };
  if (!isRecord(raw)) return undefined; // reported by the schema
  const ca = loadText(raw.ca, [...segs, 'ca'], 'ca', ctx);
  if (ca === undefined) return undefined;
  const tls: TlsOptions = { rejectUnauthorized: raw.rejectUnauthorized !== false };
  if (ca !== null) tls.ca = ca;
  return tls;
}

const PROFILE_TYPES = ['lan', 'ftp', 'sftp', 'email'] as const;
export type ProfileType = (typeof PROFILE_TYPES)[number];

export function profileTypeOf(raw: unknown): ProfileType | undefined {
  return isRecord(raw) && PROFILE_TYPES.includes(raw.type as ProfileType) ? (raw.type as ProfileType) : undefined;
}

export function checkProfile(raw: unknown, segs: Seg[], ctx: Ctx): ProfileOptions | undefined {
  const { issues } = ctx;
  if (!isRecord(raw)) {
    issues.add(segs, `expected a mapping with "type" and the connection settings, got ${describeType(raw)}`);
    return undefined;
  }
  const allowed = PROFILE_TYPES.map((t) => `"${t}"`).join(', ');
  switch (profileTypeOf(raw)) {
    case 'lan': {
      const p = issues.check(lanSchema, raw, segs);
      if (!p) return undefined;
      return { type: 'lan', root: resolveLocalPath(p.root, ctx.baseDir) } satisfies LanProfile;
    }
    case 'ftp': {
      const p = issues.check(ftpSchema, raw, segs);
      const tls = loadTls(raw.tls, [...segs, 'tls'], ctx);
      passwordSource(raw, segs, ['password'], ctx, true);
      if (!p || !tls) return undefined;
      const security = p.security ?? 'explicit';
      if (p.password) ctx.secrets.add(p.password);
      return {
        type: 'ftp',
        host: p.host,
        port: p.port ?? (security === 'implicit' ? 990 : 21),
        security,
        user: p.user,
        password: p.password ?? '',
        tls,
        encoding: p.encoding ?? 'utf8',
      } satisfies FtpProfile;
    }
    case 'sftp': {
      const p = issues.check(sftpSchema, raw, segs);
      const key = loadText(raw.privateKey, [...segs, 'privateKey'], 'key', ctx);
      if (raw.password === undefined && raw.passwordFile === undefined && raw.privateKey === undefined) {
        issues.add(segs, 'needs "password" (or "passwordFile") or "privateKey" (or both)');
      }
      passwordSource(raw, segs, ['password'], ctx, false);
      if (raw.passphrase !== undefined && raw.privateKey === undefined) {
        issues.add([...segs, 'passphrase'], 'only used together with "privateKey"');
      }
      if (!p || key === undefined) return undefined;
      const out: SftpProfile = { type: 'sftp', host: p.host, port: p.port ?? 22, user: p.user, hostKey: p.hostKey };
      if (p.password !== undefined || p.passwordFile !== undefined) out.password = p.password ?? '';
      if (key !== null) out.privateKey = key;
      if (p.passphrase !== undefined) out.passphrase = p.passphrase;
      for (const s of [p.password, p.passphrase]) if (s) ctx.secrets.add(s);
      return out;
    }
    case 'email': {
      const p = issues.check(emailSchema, raw, segs);
      const tls = loadTls(raw.tls, [...segs, 'tls'], ctx);
      for (const kind of ['smtp', 'imap'] as const) {
        const server = raw[kind];
        if (!isRecord(server)) continue;
        if ((server.password !== undefined || server.passwordFile !== undefined) && server.user === undefined) {
          issues.add([...segs, kind, 'user'], 'required when a password is given');
        }
        passwordSource(
          server,
          [...segs, kind],
          [kind, 'password'],
          ctx,
          server.user !== undefined,
          'required when a user is given',
        );
      }
      if (raw.smtp === undefined && raw.imap === undefined) {
        issues.add(segs, 'needs "smtp" (to send), "imap" (to receive), or both');
      }
      if (!p || !tls) return undefined;
      const out: EmailProfile = { type: 'email', tls, maxPerMessage: p.maxPerMessage ?? 1 };
      if (p.from !== undefined) out.from = p.from.trim();
      if (p.smtp) out.smtp = mailServer(p.smtp, 'smtp', ctx);
      if (p.imap) out.imap = mailServer(p.imap, 'imap', ctx);
      return out;
    }
    default:
      issues.add(
        [...segs, 'type'],
        raw.type === undefined ? `required: one of ${allowed}` : `expected one of ${allowed}`,
      );
      return undefined;
  }
}

function mailServer(p: z.output<typeof mailServerSchema>, kind: 'smtp' | 'imap', ctx: Ctx): MailServer {
  const tlsPort = kind === 'smtp' ? 465 : 993;
  const security =
    p.security ?? (p.port === tlsPort ? 'tls' : p.port !== undefined || kind === 'smtp' ? 'starttls' : 'tls');
  const port =
    p.port ??
    (kind === 'smtp'
      ? { none: 25, starttls: 587, tls: 465 }[security]
      : { none: 143, starttls: 143, tls: 993 }[security]);
  const out: MailServer = { host: p.host, port, security };
  if (p.user !== undefined) out.user = p.user;
  if (p.password !== undefined || p.passwordFile !== undefined) {
    out.password = p.password ?? '';
    if (p.password) ctx.secrets.add(p.password);
  }
  return out;
}
