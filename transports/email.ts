// The `email` transport: packages out over SMTP (smtp.ts), one per message or, with
// maxPerMessage > 1, bundled as the attachments of one message; packages in as the attachments of
// unseen messages in an IMAP mailbox (imap.ts). This module only puts the two halves behind the
// Transport interface; the station name goes into every outgoing message.
//
// Each half is imported when it is first used (issue 11): an in-route never loads nodemailer
// (0.03-0.06 s of a cycle's start here), an out-route never loads imapflow (~0.17 s).
import type { ImapSourceOptions } from './imap/index.js';
import type { EmailProfile, Transport } from './types.js';

const smtp = () => import('./smtp.js');
const imap = () => import('./imap/index.js');

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
    openSink: async (ep, signal) => (await smtp()).openSmtpSink(profile, station, ep, signal),
    openSource: async (ep, signal) => (await imap()).openImapSource(profile, ep, signal, opts),
    probe: async (ep, direction, signal) =>
      direction === 'out'
        ? (await smtp()).probeSmtp(profile, ep, signal)
        : (await imap()).probeImap(profile, ep, signal),
  } satisfies Transport;
}
