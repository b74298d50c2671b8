// TLS failures, recognised the same way on FTPS, SMTP and IMAP; and the client TLS context an
// FTPS profile builds once (not once per data connection).
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { TlsOptions } from '../types.js';

/** Codes of certificate checks OpenSSL / Node report by name. */
const TLS_ERROR_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  // an OpenSSL failure on the socket (a handshake alert, "wrong version number")
  'EPROTO',
]);
const TLS_ERROR_PREFIX = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_)/;

/** A Node TLS / certificate error code (the `code` of a socket or tls error). */
export function isTlsErrorCode(code: string | undefined): boolean {
  return !!code && (TLS_ERROR_CODES.has(code) || TLS_ERROR_PREFIX.test(code));
}

/**
 * The client context for `tls`: the public CAs Node ships plus `tls.ca`. Building one costs tens
 * of milliseconds of CPU (every root certificate is parsed), so a profile makes it once.
 */
export function clientSecureContext(tls: TlsOptions): SecureContext {
  return tls.ca ? createSecureContext({ ca: [...rootCertificates, tls.ca] }) : createSecureContext();
}
