// Picks the transport for a profile. The only place that knows every kind.
import { TransportError } from './errors.js';
import { createLanTransport } from './lan.js';
import type { ProfileOptions, Transport } from './types.js';

export const AVAILABLE_TRANSPORTS = ['lan'] as const;

export function createTransport(profile: ProfileOptions): Transport {
  switch (profile.type) {
    case 'lan':
      return createLanTransport(profile);
    case 'ftp':
    case 'sftp':
    case 'email':
      throw new TransportError(
        'unsupported',
        `the ${profile.type} transport is not available in this version of sprelay`,
      );
  }
}
