// FTP failures onto TransportError codes: replies by their code (the text only where servers use
// one code for several conditions), socket and TLS errors by their system code.
import { FTPError } from 'basic-ftp';
import {
  TRANSPORT_ERROR_CODES,
  TransportError,
  errnoCode,
  fromSystemError,
  isAbortError,
  LOGIN_REFUSED,
  tlsWords,
  type TransportErrorCode,
} from '../errors.js';
import { isTlsErrorCode } from '../common/tls.js';

export interface ErrorContext {
  /** Code for a reply saying the file or directory is not there. Default 'not-found'. */
  missing?: TransportErrorCode;
  /** Code for any other 550 (basic "action not taken"). Default 'permission'. */
  refused?: TransportErrorCode;
}

export const MISSING_TEXT = /no such|not found|does ?n[o']t exist|cannot find|can't find|ENOENT|not a valid directory/i;
const REFUSED_TEXT = /denied|permission|not allowed|forbidden|read-only|EACCES|EPERM/i;
const FULL_TEXT = /no space|disk full|quota|ENOSPC|EDQUOT|insufficient storage/i;

/** The code of an FTP reply. */
function replyCode(code: number, text: string, ctx: ErrorContext): TransportErrorCode {
  if (code === 530 || code === 532 || code === 332) return 'auth';
  // servers report a full disk under many codes (vsftpd 451, ProFTPD 450/550, IIS 452/552)
  if (code === 452 || code === 552 || (code >= 400 && FULL_TEXT.test(text))) return 'no-space';
  if (code === 425 || code === 426) return 'network';
  if (code === 421 || code === 450 || code === 451) return 'unavailable';
  if (code === 550 || code === 551 || code === 553) {
    if (REFUSED_TEXT.test(text)) return 'permission';
    if (MISSING_TEXT.test(text)) return ctx.missing ?? 'not-found';
    return ctx.refused ?? 'permission';
  }
  if (code === 522 || code === 533 || code === 534 || code === 431) return 'tls';
  if (code === 502 || code === 504) return 'unsupported';
  if (code >= 400 && code < 500) return 'unavailable';
  return 'protocol';
}

export function classifyFtp(
  err: unknown,
  what: string,
  ctx: ErrorContext,
  text: (s: string) => string,
): TransportError {
  if (err instanceof TransportError) return err;
  if (isAbortError(err)) return new TransportError('aborted', `${what}: aborted`, { cause: err });
  if (err instanceof FTPError) {
    const reply = text(err.message).trim();
    const code = replyCode(err.code, reply, ctx);
    const words = code === 'auth' ? `${LOGIN_REFUSED}: ` : '';
    return new TransportError(code, `${what}: ${words}the server answered ${reply}`, { cause: err });
  }
  const message = err instanceof Error ? text(err.message) : String(err);
  const errno = errnoCode(err);
  if (isTlsErrorCode(errno)) {
    return new TransportError('tls', `${what}: ${tlsWords(errno)}: ${errno}: ${message}`, { cause: err });
  }
  // "Client is closed because <reason>": basic-ftp copies the reason's code, ours included
  if (errno && errno in TRANSPORT_ERROR_CODES) {
    return new TransportError(errno as TransportErrorCode, `${what}: ${message}`, { cause: err });
  }
  if (errno && errno !== '0') return fromSystemError(err, what);
  // "Timeout (control socket)", "Timeout (data socket)", and the same as the reason a closed client gives
  if (/^(Client is closed because )?Timeout\b|Timeout when trying to open data connection/i.test(message)) {
    return new TransportError('timeout', `${what}: ${message}`, { cause: err });
  }
  if (/User closed client/.test(message))
    return new TransportError('aborted', `${what}: connection closed`, { cause: err });
  if (/SSL|TLS|certificate/.test(message)) return new TransportError('tls', `${what}: ${message}`, { cause: err });
  if (/can't parse|cannot parse|unexpected FTP response|exceeded maximum|Invalid command/i.test(message)) {
    return new TransportError('protocol', `${what}: ${message}`, { cause: err });
  }
  // closed connections, FIN from the server, transmission errors: try again later
  return new TransportError('network', `${what}: ${message}`, { cause: err });
}
