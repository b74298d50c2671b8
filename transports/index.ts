// Picks the transport for a profile. The only place that knows every kind.
import { createEmailTransport } from './email.js';
import { createFtpTransport } from './ftp/index.js';
import { createLanTransport } from './lan/index.js';
import { createSftpTransport } from './sftp/index.js';
import type { ProfileOptions, Transport } from './types.js';

export const AVAILABLE_TRANSPORTS = ['lan', 'ftp', 'sftp', 'email'] as const;

/** `station` goes into e-mail subjects and headers. */
export function createTransport(profile: ProfileOptions, station: string): Transport {
  switch (profile.type) {
    case 'lan':
      return createLanTransport(profile);
    case 'sftp':
      return createSftpTransport(profile);
    case 'email':
      return createEmailTransport(profile, station);
    case 'ftp':
      return createFtpTransport(profile);
  }
}
