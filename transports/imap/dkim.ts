// `requireAuth: dkim`: a message counts as coming from its From domain only when it carries a valid
// DKIM signature of that domain (mailauth's verifier: the body hash, the signed headers, the
// signature against the public key from DNS). allowFrom alone is no authentication, as anyone can
// write any From; a DKIM signature can only be made with the sending domain's private key.
//
// Rules on top of mailauth's "pass":
// - aligned: the signing domain (d=) and the From domain share their organisational domain
//   (relaxed alignment, as DMARC does by default: mail.x.com signs for office@x.com);
// - From is among the signed headers;
// - nothing after a body length limit (l=): bytes appended to a signed message are not signed;
// - at most MAX_SIGNATURES signatures and as many DNS lookups per message (each signature costs a
//   lookup and a pass over the body), every lookup under the route's deadline.
// A DNS failure (temperror) is not a verdict: the message is looked at again next cycle.
import { promises as dns } from 'node:dns';
import type { Readable } from 'node:stream';
import type { DKIMVerifyResult } from 'mailauth';
import { withDeadline } from '../deadline.js';
import { TransportError } from '../errors.js';

/** TXT records of a name, as node:dns resolveTxt gives them (tests serve keys from memory). */
export type DnsResolver = (name: string, rrtype: string) => Promise<string[][] | string[]>;

/** DKIM-Signature headers a message may carry: a few is normal (the author's domain, a list, an ESP). */
export const MAX_SIGNATURES = 5;

export type DkimVerdict =
  | { ok: true; domain: string }
  | { ok: false; reason: string }
  /** Could not be decided now (DNS did not answer): looked at again next cycle. */
  | { ok: 'later'; reason: string };

/** The system's DNS, each lookup under `ms` and the signal. */
export function systemResolver(ms: number): DnsResolver {
  return async (name, rrtype) => {
    if (rrtype.toUpperCase() !== 'TXT')
      throw Object.assign(new Error(`no ${rrtype} lookups here`), { code: 'ENOTIMP' });
    const resolver = new dns.Resolver({ timeout: Math.max(1000, Math.min(ms, 10_000)), tries: 2 });
    try {
      return await resolver.resolveTxt(name);
    } finally {
      resolver.cancel();
    }
  };
}

interface DkimResultLike {
  signingDomain?: string;
  status?: { result?: string; comment?: string | boolean; aligned?: string | false; underSized?: number };
  signingHeaders?: { keys?: string };
}

/**
 * Verifies the message streamed by `source` for `sender` (the one From address, already checked).
 * `what` names the message in errors. Throws TransportError only for the transfer itself.
 */
export async function checkDkim(
  source: Readable,
  sender: string,
  opts: { resolver: DnsResolver; ms: number; signal: AbortSignal; what: string },
): Promise<DkimVerdict> {
  let lookups = 0;
  const resolver: DnsResolver = (name, rrtype) => {
    if (++lookups > MAX_SIGNATURES) {
      return Promise.reject(Object.assign(new Error('too many DKIM lookups for one message'), { code: 'ETOOMANY' }));
    }
    return withDeadline(`DNS lookup of ${name}`, opts.ms, opts.signal, () => opts.resolver(name, rrtype));
  };
  let res: DKIMVerifyResult;
  try {
    // loaded on first use: only routes with requireAuth pay for it (joi, tldts: ~80 ms at start)
    const { dkimVerify } = await import('mailauth/lib/dkim/verify.js');
    res = await dkimVerify(source, { resolver, minBitLength: 1024 });
  } catch (err) {
    // the transfer under the verifier failed (already a TransportError: the caller's to handle)
    if (err instanceof TransportError) throw err;
    const text = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: `the message cannot be checked for DKIM: ${text}` };
  }
  if (opts.signal.aborted) throw new TransportError('aborted', `${opts.what}: aborted`);
  const fromDomain = sender.split('@').pop()!;
  const headerFrom = (res.headerFrom ?? []).map((a: string) => a.toLowerCase());
  if (headerFrom.length !== 1 || headerFrom[0] !== sender) {
    return {
      ok: false,
      reason: `the DKIM check reads the sender as ${headerFrom.join(', ') || 'nobody'}, not <${sender}>`,
    };
  }
  const results = (res.results ?? []) as DkimResultLike[];
  const signatures = results.filter((r) => r.status?.result !== 'none');
  if (signatures.length === 0) return { ok: false, reason: 'no DKIM signature (requireAuth: dkim)' };
  if (signatures.length > MAX_SIGNATURES) {
    return { ok: false, reason: `${signatures.length} DKIM signatures (at most ${MAX_SIGNATURES} are checked)` };
  }
  const problems: string[] = [];
  for (const r of signatures) {
    const d = (r.signingDomain ?? '?').toLowerCase();
    const result = r.status?.result ?? 'none';
    if (result !== 'pass') {
      const comment = typeof r.status?.comment === 'string' ? `: ${r.status.comment}` : '';
      problems.push(`signature of ${d} does not verify (${result}${comment})`);
      continue;
    }
    if (!r.status?.aligned) {
      problems.push(`signature of ${d} is valid but not of the From domain ${fromDomain}`);
      continue;
    }
    const signed = (r.signingHeaders?.keys ?? '').split(/:\s*/).map((k) => k.trim().toLowerCase());
    if (!signed.includes('from')) {
      problems.push(`signature of ${d} does not cover the From header`);
      continue;
    }
    if (r.status.underSized) {
      problems.push(`signature of ${d} leaves ${r.status.underSized} bytes of the body unsigned (l= tag)`);
      continue;
    }
    return { ok: true, domain: d };
  }
  // no signature passed because DNS did not answer (not because a key is missing): not a verdict
  const later = signatures.find((r) => r.status?.result === 'temperror');
  if (later) {
    const comment = typeof later.status?.comment === 'string' ? later.status.comment : 'DNS failure';
    return { ok: 'later', reason: `DKIM key of ${later.signingDomain ?? '?'} not available now (${comment})` };
  }
  return { ok: false, reason: `DKIM: ${problems.join('; ')}` };
}
