// SFTP failures onto TransportError codes: requests by their SFTP status, the connection by ssh2's
// error level and the system's code; the host-key refusals in words an operator can act on.
import {
  TransportError,
  errnoCode,
  fromSystemError,
  isAbortError,
  LOGIN_REFUSED,
  networkWords,
  type TransportErrorCode,
} from '../errors.js';
import { formatMs } from '../deadline.js';
import type { SftpProfile } from '../types.js';
import type { ConnectProgress } from './connection.js';

// SFTP v3 status codes (ssh2 is a dependency of ssh2-sftp-client, not of ours: no runtime import)
export const SSH_FX = {
  EOF: 1,
  NO_SUCH_FILE: 2,
  PERMISSION_DENIED: 3,
  FAILURE: 4,
  BAD_MESSAGE: 5,
  NO_CONNECTION: 6,
  CONNECTION_LOST: 7,
  OP_UNSUPPORTED: 8,
} as const;
/** FAILURE messages of servers that say why (ProFTPD, Bitvise, ...); OpenSSH only says "Failure". */
const NO_SPACE_RE = /no space|disk full|quota|ENOSPC|EDQUOT|insufficient (disk )?space/i;

/** What a failed request was doing: decides how an SFTP FAILURE status reads. */
/** ssh2's message for a request the closing channel left unanswered (lib/protocol/SFTP.js). */
export const NO_RESPONSE = 'No response from server';

export type RequestKind = 'read' | 'write' | 'meta';

/** ssh2's classification of a connection failure (`err.level`). */
export type Level =
  'client-authentication' | 'client-timeout' | 'client-socket' | 'client-dns' | 'handshake' | 'protocol';

export function connectError(
  err: unknown,
  lastError: (Error & { level?: Level; code?: unknown }) | undefined,
  profile: SftpProfile,
  label: string,
  progress: ConnectProgress,
  ms: number,
): TransportError {
  if (progress.offered !== undefined && !progress.hostKeyOk)
    return hostKeyError(profile.hostKey, progress.offered, label);
  if (err instanceof TransportError) {
    if (err.code !== 'timeout') return err;
    const stage =
      progress.offered === undefined
        ? 'no SSH handshake'
        : progress.authenticated
          ? 'the SFTP subsystem did not start'
          : 'no answer to authentication';
    return new TransportError('timeout', `connect to ${label}: ${stage} within ${formatMs(ms)}`, { cause: err });
  }
  const e = (lastError ?? err) as Error & { level?: Level; code?: unknown };
  const detail = e instanceof Error ? e.message : String(e);
  const errno = errnoCode(e) ?? errnoCode(err);
  if (e.level === 'client-authentication' || /authentication methods failed/i.test(detail)) {
    const methods = [profile.password !== undefined && 'password', profile.privateKey !== undefined && 'private key']
      .filter(Boolean)
      .join(', ');
    return new TransportError('auth', `connect to ${label}: ${LOGIN_REFUSED} (tried: ${methods || 'none'})`, {
      cause: err,
    });
  }
  if (/privateKey|private key|passphrase|decrypt/i.test(detail) && !progress.offered) {
    return new TransportError('auth', `connect to ${label}: the private key cannot be used: ${detail}`);
  }
  if (e.level === 'client-timeout')
    return new TransportError('timeout', `connect to ${label}: ${detail}`, { cause: err });
  if (e.level === 'client-dns' || errno === 'ENOTFOUND' || errno === 'EAI_AGAIN') {
    return new TransportError('dns', `connect to ${label}: ${networkWords('ENOTFOUND', { hostname: profile.host })}`, {
      cause: err,
    });
  }
  if (errno && errno !== 'ERR_GENERIC_CLIENT') return fromSystemError(e, `connect to ${label}`);
  if (e.level === 'handshake') {
    // no common algorithm and the like: the server must change, retrying will not help
    return new TransportError('protocol', `connect to ${label}: SSH handshake failed: ${detail}`, { cause: err });
  }
  return new TransportError('network', `connect to ${label}: ${detail}`, { cause: err });
}

function hostKeyError(pin: string, offered: string, label: string): TransportError {
  if (pin.trim() === '') {
    return new TransportError(
      'host-key',
      `host key of ${label} is not pinned: the server offered ${offered}. Confirm it with the server's ` +
        `administrator, then set hostKey: ${offered} in the profile`,
    );
  }
  if (pin !== 'any' && !pin.startsWith('SHA256:')) {
    return new TransportError(
      'host-key',
      `hostKey ${JSON.stringify(pin)} is not a SHA256:<base64> fingerprint (nor the word any); ` +
        `the server ${label} offered ${offered}`,
    );
  }
  return new TransportError(
    'host-key',
    `host key of ${label} does not match: the server offered ${offered}, the profile pins ${pin}. ` +
      `If the server's key was changed on purpose, update hostKey; otherwise the connection may be intercepted`,
  );
}

/** The SFTP status of a failure (numeric `code` of ssh2's error), through a TransportError's cause. */
export function sftpStatus(err: unknown): number | undefined {
  for (let e = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

export function classify(err: unknown, what: string, kind: RequestKind): TransportError {
  if (err instanceof TransportError) return err;
  if (isAbortError(err)) return new TransportError('aborted', `${what}: aborted`, { cause: err });
  const detail = err instanceof Error ? err.message : String(err);
  const status = (err as { code?: unknown } | null)?.code;
  if (typeof status === 'number') {
    const said = `${what}: ${detail} (SFTP status ${status})`;
    let code: TransportErrorCode;
    switch (status) {
      case SSH_FX.NO_SUCH_FILE:
        code = 'not-found';
        break;
      case SSH_FX.PERMISSION_DENIED:
        code = 'permission';
        break;
      case SSH_FX.FAILURE:
        if (NO_SPACE_RE.test(detail)) code = 'no-space';
        else if (kind === 'write') {
          // OpenSSH answers ENOSPC, EDQUOT and EIO alike with a bare "Failure"
          return new TransportError(
            'unavailable',
            `${said}: the server refused the write without saying why (a full disk or quota on OpenSSH)`,
            { cause: err },
          );
        } else code = 'unavailable';
        break;
      case SSH_FX.NO_CONNECTION:
      case SSH_FX.CONNECTION_LOST:
        code = 'network';
        break;
      case SSH_FX.OP_UNSUPPORTED:
        code = 'unsupported';
        break;
      default:
        code = 'protocol';
    }
    return new TransportError(code, said, { cause: err });
  }
  // ssh2 fails every request still waiting when the channel closes with this text and no code
  if (detail === NO_RESPONSE) {
    return new TransportError('network', `${what}: the connection closed before the server answered`, { cause: err });
  }
  if (errnoCode(err)) return fromSystemError(err, what);
  return new TransportError('protocol', `${what}: ${detail}`, { cause: err });
}
