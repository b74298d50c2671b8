// When a failed package is tried again. Exponential backoff with "equal jitter" (half fixed, half
// random) so that a chain of stations that lost the office server at the same moment does not
// come back at the same second; the error's class decides whether there is a next time at all.
import type { RetryPolicy } from './config.js';

/** Delay before attempt number `attempts + 1`, given that `attempts` have failed (>= 1). */
export function backoffDelay(policy: RetryPolicy, attempts: number, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempts - 1));
  const half = exp / 2;
  return Math.round(half + random() * half);
}

export type FailureVerdict = { kind: 'retry'; nextAttemptAt: number } | { kind: 'dead'; why: string };

/**
 * `retryable` errors are tried again until maxAttempts; permanent ones about the package itself
 * (a different file of that name exists, the server refuses the name) are dead at once, since
 * trying again cannot help until a person acts (and `resend` is how they say they did).
 */
export function judgeFailure(
  policy: RetryPolicy,
  attempts: number,
  retryable: boolean,
  now: number,
  random?: () => number,
): FailureVerdict {
  if (!retryable) return { kind: 'dead', why: 'permanent error' };
  if (attempts >= policy.maxAttempts) return { kind: 'dead', why: `gave up after ${attempts} attempts` };
  return { kind: 'retry', nextAttemptAt: now + backoffDelay(policy, attempts, random) };
}
