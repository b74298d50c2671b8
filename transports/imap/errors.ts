// imapflow failures onto TransportError codes: imapflow's own codes and flags first, the server's
// response codes next, the system's code last. Server text is kept; credentials never appear.
import {
  LOGIN_REFUSED,
  TransportError,
  errnoCode,
  fromSystemError,
  isAbortError,
  tlsWords,
  type TransportErrorCode,
} from '../errors.js';
import { isTlsErrorCode } from '../common/tls.js';

interface ImapFailure {
  code?: string;
  authenticationFailed?: boolean;
  tlsFailed?: boolean;
  serverResponseCode?: string;
  responseStatus?: string;
  responseText?: string;
  mailboxMissing?: boolean;
}

const IMAPFLOW_CODES: Record<string, TransportErrorCode> = {
  CONNECT_TIMEOUT: 'timeout',
  GREETING_TIMEOUT: 'timeout',
  UPGRADE_TIMEOUT: 'timeout',
  ETIMEOUT: 'timeout',
  NoConnection: 'network',
  EConnectionClosed: 'network',
  ClosedAfterConnectText: 'network',
  ClosedAfterConnectTLS: 'network',
  StateLogout: 'network',
  ETHROTTLE: 'unavailable',
  DownloadIncomplete: 'not-found',
  DownloadOverflow: 'protocol',
  LineTooLarge: 'protocol',
  LiteralTooLarge: 'protocol',
  ResponseTooLarge: 'protocol',
  TooManyTokens: 'protocol',
  TooManyResponses: 'protocol',
  STARTTLS_INJECTION: 'tls',
  NoMailboxSelected: 'protocol',
};

/** Maps an imapflow failure onto a TransportError. Server text is kept; credentials never appear. */
export function imapError(err: unknown, what: string): TransportError {
  if (err instanceof TransportError) return err;
  if (isAbortError(err)) return new TransportError('aborted', `${what}: aborted`, { cause: err });
  const e = (err && typeof err === 'object' ? err : {}) as ImapFailure;
  const detail = [err instanceof Error ? err.message : String(err), e.responseText].filter(Boolean).join(': ');
  const make = (code: TransportErrorCode, text: string) => new TransportError(code, `${what}: ${text}`, { cause: err });
  const response = e.serverResponseCode?.toUpperCase();
  if (e.authenticationFailed || response === 'AUTHENTICATIONFAILED' || response === 'AUTHORIZATIONFAILED') {
    return make('auth', `${LOGIN_REFUSED}: ${detail}`);
  }
  if (e.tlsFailed || isTlsErrorCode(e.code)) return make('tls', `${tlsWords(e.code ?? errnoCode(err))}: ${detail}`);
  if (response === 'UNAVAILABLE' || response === 'INUSE' || response === 'LIMIT') {
    return make('unavailable', `the server is not available right now: ${detail}`);
  }
  if (e.code && IMAPFLOW_CODES[e.code]) return make(IMAPFLOW_CODES[e.code]!, detail);
  if (e.code?.startsWith('ParserError')) return make('protocol', detail);
  if (errnoCode(err) && /^E[A-Z]+$/.test(errnoCode(err)!)) return fromSystemError(err, what);
  if (e.responseStatus === 'NO' || e.responseStatus === 'BAD') {
    return make('protocol', `the server answered ${e.responseStatus}: ${detail}`);
  }
  return make('network', detail);
}

/** A mailbox that cannot be selected: it may be created later, or the server is struggling. */
export function mailboxError(err: unknown, mailbox: string): TransportError {
  const e = err instanceof TransportError ? err : imapError(err, `open mailbox ${mailbox}`);
  if (e.code !== 'protocol') return e;
  return new TransportError('unavailable', `mailbox ${mailbox} cannot be opened: ${e.message}`, { cause: err });
}
