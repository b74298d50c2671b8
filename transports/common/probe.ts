// The step runner of `sprelay check`: every step is recorded, a failure as its TransportError.
import type { TransportError } from '../errors.js';
import type { ProbeStep } from '../types.js';

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

/**
 * The connect / TLS / login steps of a mail server check that ran as one call (nodemailer's
 * verify, imapflow's connect): the failure's code says which step it was.
 */
export function mailSetupSteps(
  e: TransportError | undefined,
  connectStep: string,
  tlsStep: string,
  loginStep: string,
  plaintext: boolean,
): ProbeStep[] {
  const tlsOk: ProbeStep = { step: tlsStep, ok: true, ...(plaintext ? { detail: 'not encrypted' } : {}) };
  if (!e) return [{ step: connectStep, ok: true }, tlsOk, { step: loginStep, ok: true }];
  const failed = (step: string): ProbeStep => ({ step, ok: false, detail: e.message, code: e.code });
  if (e.code === 'tls') return [{ step: connectStep, ok: true }, failed(tlsStep)];
  if (e.code === 'auth') return [{ step: connectStep, ok: true }, { step: tlsStep, ok: true }, failed(loginStep)];
  return [failed(connectStep)];
}
