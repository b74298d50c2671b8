// No secret (password, passphrase, key text) in an error message, whatever a library put there.
import { TransportError } from '../errors.js';

/** Secrets shorter than this are not scrubbed: `***` for every `a` would make messages unreadable. */
const MIN_SECRET_LENGTH = 3;

/** A redactor for `secrets`; the undefined / short ones are ignored. */
export function redactor(secrets: Array<string | undefined>): (e: TransportError) => TransportError {
  const list = secrets.filter((s): s is string => typeof s === 'string' && s.length >= MIN_SECRET_LENGTH);
  return (e) => {
    if (!list.some((s) => e.message.includes(s))) return e;
    let message = e.message;
    for (const s of list) message = message.split(s).join('***');
    return new TransportError(e.code, message); // the cause may carry the secret too: dropped
  };
}
