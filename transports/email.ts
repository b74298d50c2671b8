// The `email` transport: packages out as one message each over SMTP (smtp.ts), packages in as
// the attachments of unseen messages in an IMAP mailbox (imap.ts). This module only puts the two
// halves behind the Transport interface; the station name goes into every outgoing message.
import { openImapSource, probeImap } from './imap.js';
import { openSmtpSink, probeSmtp } from './smtp.js';
import type { EmailProfile, Transport } from './types.js';

export { messageIdFor, subjectFor } from './smtp.js';

/**
 * `maxPerMessage` above 1 (several packages bundled into one message) is not implemented: every
 * package is sent as a message of its own, which is also what keeps its Message-ID stable.
 */
export function createEmailTransport(profile: EmailProfile, station: string): Transport {
  return {
    kind: 'email',
    openSink: (ep, signal) => openSmtpSink(profile, station, ep, signal),
    openSource: (ep, signal) => openImapSource(profile, ep, signal),
    probe: (ep, direction, signal) =>
      direction === 'out' ? probeSmtp(profile, ep, signal) : probeImap(profile, ep, signal),
  } satisfies Transport;
}
