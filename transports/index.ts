// Picks the transport for a profile. The only place that knows every kind.
import { TransportError } from './errors.js';
import { createLanTransport } from './lan.js';
import { createSftpTransport } from './sftp.js';
import type { ProfileOptions, Transport } from './types.js';

export const AVAILABLE_TRANSPORTS = ['lan', 'sftp'] as const;

export function createTransport(profile: ProfileOptions): Transport {
  switch (profile.type) {
    case 'lan':
      return createLanTransport(profile);
    case 'sftp':
      return createSftpTransport(profile);
    case 'ftp':
    case 'email':
      throw new TransportError(
        'unsupported',
        `the ${profile.type} transport is not available in this version of sprelay`,
      );
  }
}
