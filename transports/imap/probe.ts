// `sprelay check` for an IMAP in-route: connect, TLS, log in, open the mailbox, the move targets.
import { mailSetupSteps, mailSteps } from '../common/probe.js';
import { withDeadline } from '../deadline.js';
import type { EmailProfile, Endpoint, ProbeStep } from '../types.js';
import { connectClient, type Connection } from './connection.js';
import { imapError, mailboxError } from './errors.js';

/** `sprelay check` for an in-route: connect, TLS, log in, open the mailbox, the move target. */
export async function probeImap(profile: EmailProfile, ep: Endpoint, signal: AbortSignal): Promise<ProbeStep[]> {
  const server = profile.imap;
  if (!server)
    return [{ step: 'imap server', ok: false, detail: 'the e-mail profile has no imap server', code: 'unsupported' }];
  const ms = ep.timeoutMs;
  const names = mailSteps('imap', server);
  const where = names.where;
  if (!server.user) {
    return [{ step: names.login, ok: false, detail: 'the imap server needs a user and password', code: 'auth' }];
  }
  let conn: Connection;
  try {
    conn = await connectClient(server, profile.tls, ms, `connect to imap ${where}`, signal);
  } catch (err) {
    return mailSetupSteps(imapError(err, `imap ${where}`), names);
  }
  const client = conn.client;
  try {
    const steps = mailSetupSteps(undefined, names);
    const mailbox = ep.remote || 'INBOX';
    const boxStep = `open mailbox ${mailbox}`;
    try {
      const box = await withDeadline(boxStep, ms, signal, () => client.mailboxOpen(mailbox, { readOnly: true }));
      const unseen = await withDeadline(boxStep, ms, signal, () => client.status(mailbox, { unseen: true }));
      steps.push({
        step: boxStep,
        ok: true,
        detail: `${box.exists} message(s), ${unseen && unseen.unseen !== undefined ? unseen.unseen : '?'} unseen`,
      });
    } catch (err) {
      const e = mailboxError(err, mailbox);
      steps.push({ step: boxStep, ok: false, detail: e.message, code: e.code });
      return steps;
    }
    if (!ep.mail?.allowFrom || ep.mail?.allowFrom.length === 0) {
      steps.push({ step: 'allowed senders', ok: false, detail: 'allowFrom is required', code: 'unsupported' });
    }
    // a move target that is missing is no failure: the first move creates it
    const target = async (step: string, to: string): Promise<ProbeStep> => {
      const missing = { step, ok: true, detail: 'does not exist yet; created on first use' };
      try {
        // imapflow answers false when the server refuses STATUS (no such mailbox)
        const st = await withDeadline(step, ms, signal, () => client.status(to, { messages: true }));
        return st ? { step, ok: true, detail: `${st.messages ?? '?'} message(s)` } : missing;
      } catch {
        return missing;
      }
    };
    if (ep.afterReceive.kind === 'move')
      steps.push(await target(`move target ${ep.afterReceive.to}`, ep.afterReceive.to));
    const refuse = ep.mail?.afterRefuse;
    if (refuse?.kind === 'move') {
      steps.push(await target(`refused-message target ${refuse.to}`, refuse.to));
    }
    return steps;
  } finally {
    await conn.logout();
  }
}
