// The `email` transport: packages out over SMTP (smtp.ts), one per message or, with
// maxPerMessage > 1, bundled as the attachments of one message; packages in as the attachments of
// unseen messages in an IMAP mailbox (imap.ts). This module only puts the two halves behind the
// Transport interface; the station name goes into every outgoing message.
import { openImapSource, probeImap, type ImapSourceOptions } from './imap/index.js';
import { openSmtpSink, probeSmtp } from './smtp.js';
import type { EmailProfile, Transport } from './types.js';

export { bundleMessageIdFor, messageIdFor, subjectFor } from './smtp.js';

/**
 * With `maxPerMessage` above 1 the sink offers `bundle`: the pipeline groups due
 * packages (oldest first, at most maxPerMessage and the route's maxSize in all) and each group
 * leaves as one message whose Message-ID is derived from the station and every (name, SHA-256)
 * in order. A single package is always sent exactly as with maxPerMessage 1.
 */
export function createEmailTransport(profile: EmailProfile, station: string, opts: ImapSourceOptions = {}): Transport {
  return {
    kind: 'email',
    features: { move: true, bundle: profile.maxPerMessage > 1, folders: false },
    openSink: (ep, signal) => openSmtpSink(profile, station, ep, signal),
    openSource: (ep, signal) => openImapSource(profile, ep, signal, opts),
    probe: (ep, direction, signal) =>
      direction === 'out' ? probeSmtp(profile, ep, signal) : probeImap(profile, ep, signal),
  } satisfies Transport;
}
