// Picks the transport for a profile. The only place that knows every kind.
//
// A transport's module (and its client library: ssh2, basic-ftp, imapflow + nodemailer) is loaded
// when a route first opens, lists or probes through it, not when the CLI starts: a station that
// uses lan and e-mail never loads ssh2, and `status`, `list` or an idle `once` load none of them
// (issue 11: about a fifth of an idle process's memory was client libraries it never used).
import { createLanTransport } from './lan/index.js';
import type { ProfileOptions, Transport, TransportFeatures } from './types.js';

export const AVAILABLE_TRANSPORTS = ['lan', 'ftp', 'sftp', 'email'] as const;

/**
 * What each transport declares (its module says the same: test/transports-common.test.ts
 * compares them), known before the module is loaded.
 */
export function featuresOf(profile: ProfileOptions): TransportFeatures {
  return {
    move: true,
    bundle: profile.type === 'email' && profile.maxPerMessage > 1,
    folders: profile.type !== 'email',
  };
}

/** The transport itself, its module loaded now. `station` goes into e-mail subjects and headers. */
export async function loadTransport(profile: ProfileOptions, station: string): Promise<Transport> {
  switch (profile.type) {
    case 'lan':
      return createLanTransport(profile);
    case 'sftp':
      return (await import('./sftp/index.js')).createSftpTransport(profile);
    case 'email':
      return (await import('./email.js')).createEmailTransport(profile, station);
    case 'ftp':
      return (await import('./ftp/index.js')).createFtpTransport(profile);
  }
}

/** The transport for a profile; its module is loaded on the first call that needs it. */
export function createTransport(profile: ProfileOptions, station: string): Transport {
  let loaded: Promise<Transport> | undefined;
  const real = () => (loaded ??= loadTransport(profile, station));
  return {
    kind: profile.type,
    features: featuresOf(profile),
    openSink: async (ep, signal) => (await real()).openSink(ep, signal),
    openSource: async (ep, signal) => (await real()).openSource(ep, signal),
    probe: async (ep, direction, signal) => (await real()).probe(ep, direction, signal),
  };
}
