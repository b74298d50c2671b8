// Names on the FTP wire: basic-ftp speaks a Node Buffer encoding on the control connection, which
// has no windows-1251; old station-side servers do. latin1 keeps every byte one char, and `Wire`
// does the rest (and refuses a name the server's charset cannot write).
import { TransportError } from '../errors.js';
import type { FtpProfile } from '../types.js';

export interface Wire {
  /** basic-ftp's control connection encoding. */
  encoding: 'utf8' | 'latin1';
  /** A name or path as basic-ftp must be given it; 'invalid-name' when the server cannot write it. */
  out(text: string, what: string): string;
  /** User or password: like `out`, but the refusal never shows the text. */
  secret(text: string, which: 'user' | 'password'): string;
  /** Text from the server (a listing, PWD, a reply) as the characters it means. */
  in(text: string): string;
}

export function wireFor(encoding: FtpProfile['encoding']): Wire {
  if (encoding !== 'cp1251') {
    return { encoding: 'utf8', out: (text) => text, secret: (text) => text, in: (text) => text };
  }
  const table = cp1251Table();
  const encode = (text: string): string | null => {
    let out = '';
    for (const ch of text) {
      const code = ch.codePointAt(0)!;
      const byte = code < 0x80 ? code : table.get(ch);
      if (byte === undefined) return null;
      out += String.fromCharCode(byte);
    }
    return out;
  };
  return {
    encoding: 'latin1',
    out(text, what) {
      const encoded = encode(text);
      if (encoded === null) {
        throw new TransportError(
          'invalid-name',
          `${what}: ${JSON.stringify(text)} has characters windows-1251 cannot write (encoding: cp1251)`,
        );
      }
      return encoded;
    },
    secret(text, which) {
      const encoded = encode(text);
      if (encoded === null) {
        throw new TransportError('auth', `the ${which} has characters windows-1251 cannot write (encoding: cp1251)`);
      }
      return encoded;
    },
    in: (text) => CP1251.decode(Buffer.from(text, 'latin1')),
  };
}

const CP1251 = new TextDecoder('windows-1251');
let cp1251Bytes: Map<string, number> | undefined;

/** Character -> byte for the upper half of windows-1251 (the WHATWG table Node's decoder uses). */
function cp1251Table(): Map<string, number> {
  if (!cp1251Bytes) {
    cp1251Bytes = new Map();
    for (let b = 0x80; b <= 0xff; b++) cp1251Bytes.set(CP1251.decode(Uint8Array.of(b)), b);
  }
  return cp1251Bytes;
}

/** For tests: how a name travels to and from a server with `encoding`. */
export function ftpWireName(encoding: FtpProfile['encoding']): { out(name: string): string; in(wire: string): string } {
  const w = wireFor(encoding);
  return { out: (name) => w.out(name, 'name'), in: (text) => w.in(text) };
}
