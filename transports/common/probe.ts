// The step runner of `sprelay check`: every step is recorded, a failure as its TransportError.
import type { TransportError } from '../errors.js';
import type { MailServer, ProbeStep } from '../types.js';

export interface ProbeRun {
  readonly steps: ProbeStep[];
  /** Runs one step; true when it passed. `fn` returns the step's detail. */
  step(name: string, fn: () => Promise<string | undefined>): Promise<boolean>;
  /** Records a failed step. */
  fail(name: string, err: unknown): Promise<void>;
}

/** `classify` turns whatever a step threw into the TransportError the step reports. */
export function probeRun(classify: (err: unknown, step: string) => TransportError | Promise<TransportError>): ProbeRun {
  const steps: ProbeStep[] = [];
  const pushFailure = (name: string, e: TransportError) =>
    steps.push({ step: name, ok: false, detail: e.message, code: e.code });
  return {
    steps,
    async step(name, fn) {
      try {
        const detail = await fn();
        steps.push(detail === undefined ? { step: name, ok: true } : { step: name, ok: true, detail });
        return true;
      } catch (err) {
        pushFailure(name, await classify(err, name));
        return false;
      }
    },
    async fail(name, err) {
      pushFailure(name, await classify(err, name));
    },
  };
}

/** The names of a mail server check's first three steps. */
export interface MailSteps {
  readonly where: string;
  readonly connect: string;
  readonly tls: string;
  readonly login: string;
  readonly plaintext: boolean;
}

export function mailSteps(protocol: 'smtp' | 'imap', server: MailServer): MailSteps {
  const where = `${server.host}:${server.port}`;
  const plaintext = server.security === 'none';
  return {
    where,
    connect: `connect to ${protocol} ${where}`,
    tls: plaintext ? 'TLS: none (security: none)' : `TLS (${server.security})`,
    login: server.user ? `log in as ${server.user}` : 'log in: no user configured',
    plaintext,
  };
}

/**
 * The connect / TLS / login steps of a mail server check that ran as one call (nodemailer's
 * verify, imapflow's connect): the failure's code says which step it was.
 */
export function mailSetupSteps(e: TransportError | undefined, names: MailSteps): ProbeStep[] {
  const { connect, tls, login } = names;
  const tlsOk: ProbeStep = { step: tls, ok: true, ...(names.plaintext ? { detail: 'not encrypted' } : {}) };
  if (!e) return [{ step: connect, ok: true }, tlsOk, { step: login, ok: true }];
  const failed = (step: string): ProbeStep => ({ step, ok: false, detail: e.message, code: e.code });
  if (e.code === 'tls') return [{ step: connect, ok: true }, failed(tls)];
  if (e.code === 'auth') return [{ step: connect, ok: true }, { step: tls, ok: true }, failed(login)];
  return [failed(connect)];
}
