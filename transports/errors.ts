// One error type for every transport. The code table below is public API: the pipelines decide
// retry / dead / stop-the-route from `retryable` and `scope` alone, never from a library's message.
// A transport maps its library's failures onto these codes and adds nothing else.

export const TRANSPORT_ERROR_CODES = {
  // retryable: the same call may succeed later without anyone changing anything
  network: { retryable: true, scope: 'connection', what: 'connection failed or was reset' },
  timeout: { retryable: true, scope: 'connection', what: 'no progress within the deadline' },
  dns: { retryable: true, scope: 'connection', what: 'host name could not be resolved' },
  unavailable: { retryable: true, scope: 'connection', what: 'remote or share not reachable right now' },
  'no-space': { retryable: true, scope: 'connection', what: 'no space left on the remote or local disk' },
  busy: { retryable: true, scope: 'package', what: 'file locked by another process' },
  aborted: { retryable: true, scope: 'connection', what: 'operation aborted (shutdown or deadline)' },
  // permanent: somebody has to change the config, the server or the package
  auth: { retryable: false, scope: 'connection', what: 'authentication refused' },
  permission: { retryable: false, scope: 'connection', what: 'permission denied' },
  tls: { retryable: false, scope: 'connection', what: 'TLS certificate not trusted or handshake refused' },
  'host-key': { retryable: false, scope: 'connection', what: 'SSH host key does not match the pinned one' },
  exists: { retryable: false, scope: 'package', what: 'a different file of that name already exists remotely' },
  'not-found': { retryable: false, scope: 'package', what: 'remote entry does not exist' },
  'invalid-name': { retryable: false, scope: 'package', what: 'name refused' },
  'too-large': { retryable: false, scope: 'package', what: 'larger than allowed' },
  corrupt: { retryable: false, scope: 'package', what: 'bytes differ from what was expected' },
  rejected: { retryable: false, scope: 'package', what: 'the server refused this package' },
  protocol: { retryable: false, scope: 'connection', what: 'unexpected answer from the server' },
  unsupported: { retryable: false, scope: 'connection', what: 'not supported by this transport or server' },
} as const satisfies Record<string, { retryable: boolean; scope: 'connection' | 'package'; what: string }>;

export type TransportErrorCode = keyof typeof TRANSPORT_ERROR_CODES;

export class TransportError extends Error {
  readonly code: TransportErrorCode;
  /** Retrying the same call later may succeed. */
  readonly retryable: boolean;
  /** `connection`: the whole route is affected (stop this cycle); `package`: only this package. */
  readonly scope: 'connection' | 'package';

  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransportError';
    this.code = code;
    this.retryable = TRANSPORT_ERROR_CODES[code].retryable;
    this.scope = TRANSPORT_ERROR_CODES[code].scope;
  }
}

const ERRNO_CODES: Record<string, TransportErrorCode> = {
  ECONNRESET: 'network',
  ECONNREFUSED: 'network',
  ECONNABORTED: 'network',
  EPIPE: 'network',
  EHOSTUNREACH: 'network',
  ENETUNREACH: 'network',
  ENETDOWN: 'network',
  ENOTCONN: 'network',
  ETIMEDOUT: 'timeout',
  EAI_AGAIN: 'dns',
  ENOTFOUND: 'dns',
  ENOSPC: 'no-space',
  EDQUOT: 'no-space',
  EBUSY: 'busy',
  ETXTBSY: 'busy',
  EACCES: 'permission',
  EPERM: 'permission',
  EROFS: 'permission',
  ENOENT: 'not-found',
  EEXIST: 'exists',
  ENAMETOOLONG: 'invalid-name',
  EINVAL: 'invalid-name',
  // a share that went away under us (SMB/NFS): come back later
  EIO: 'unavailable',
  ESTALE: 'unavailable',
  ENODEV: 'unavailable',
  ENXIO: 'unavailable',
  EHOSTDOWN: 'unavailable',
};

export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/**
 * Map a Node.js system error (fs or net) onto a TransportError. Transports call this for the
 * errno cases and add their protocol cases themselves.
 */
export function fromSystemError(err: unknown, what: string): TransportError {
  if (err instanceof TransportError) return err;
  if (isAbortError(err)) return new TransportError('aborted', `${what}: aborted`, { cause: err });
  const errno = errnoCode(err);
  const code = (errno && ERRNO_CODES[errno]) || 'network';
  const words = errno ? networkWords(errno, netFields(err)) : undefined;
  const detail = words ? `${words} (${errno})` : err instanceof Error ? err.message : String(err);
  return new TransportError(code, `${what}: ${detail}`, { cause: err });
}

/** Address and port of a net error: its fields, else the `connect ECONNREFUSED 1.2.3.4:21` text. */
function netFields(err: unknown): NetErrorFields {
  const e = (err && typeof err === 'object' ? err : {}) as NetErrorFields & { message?: string };
  if (e.address) return e;
  const m = /\bE[A-Z]+ (\[[^\]]+\]|[^\s:]+):(\d+)\b/.exec(typeof e.message === 'string' ? e.message : '');
  return m ? { ...e, address: m[1]!, port: Number(m[2]) } : e;
}

interface NetErrorFields {
  address?: string;
  port?: number;
  hostname?: string;
}

/**
 * The same words for the same network failure, whichever transport met it (FTP said
 * `connect ECONNREFUSED 127.0.0.1:1 (control socket)` where SFTP said `connection refused`).
 * Pinned by test/errors.test.ts. Undefined for errors that are not about the network.
 */
export function networkWords(errno: string, e: NetErrorFields = {}): string | undefined {
  const at = e.address ? (e.port ? `${e.address}:${e.port}` : e.address) : 'the server';
  switch (errno) {
    case 'ECONNREFUSED':
      return `connection refused by ${at} (nothing listens there)`;
    case 'ECONNRESET':
      return `connection reset by ${at === 'the server' ? 'the other side' : at}`;
    case 'ETIMEDOUT':
      return `timed out: no answer from ${at}`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host name ${e.hostname ?? ''} not resolved`.replace('  ', ' ');
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENETDOWN':
      return `${at} unreachable (no network path to it)`;
    case 'EPIPE':
    case 'ECONNABORTED':
    case 'ENOTCONN':
      return 'connection broken';
    default:
      return undefined;
  }
}

export function isAbortError(err: unknown): boolean {
  return (
    !!err && typeof err === 'object' && 'name' in err && (err.name === 'AbortError' || err.name === 'TimeoutError')
  );
}

/** `check` on an in-route whose remote folder is not there: said the same way by every transport. */
export function missingInFolder(dir: string): TransportError {
  return new TransportError(
    'not-found',
    `remote folder ${dir} does not exist; an in-route does not create it (check the name, or ask the office to create it)`,
  );
}

const CERT_NOT_TRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

/** The same words for a TLS failure on FTPS, SMTP and IMAP, from the system's code (if any). */
export function tlsWords(errno: string | undefined): string {
  if (errno === 'ERR_TLS_CERT_ALTNAME_INVALID' || errno === 'HOSTNAME_MISMATCH')
    return 'TLS: the server certificate does not name this host';
  if (errno && CERT_NOT_TRUSTED.has(errno)) return 'TLS: the server certificate is not trusted (give its CA in tls.ca)';
  if (errno === 'CERT_HAS_EXPIRED') return 'TLS: the server certificate has expired';
  return 'TLS failed';
}

/** The same words for a refused login on every transport. */
export const LOGIN_REFUSED = 'login refused';
