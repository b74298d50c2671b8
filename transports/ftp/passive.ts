// Passive data connections, only ever to the host of the control connection.
import { FTPError, enterPassiveModeIPv6, type FTPContext, type FTPResponse } from 'basic-ftp';
// Not re-exported by basic-ftp's index (the package has no exports map): the function basic-ftp
// itself uses to open every passive data connection, TLS session reuse included. We only replace
// the decision where it connects to (see `passive`).
import { connectForPassiveTransfer } from 'basic-ftp/dist/transfer.js';
import { TransportError } from '../errors.js';

/** What one control connection learned: whether the server does EPSV (on the first transfer). */
export interface PassiveState {
  epsv?: boolean;
}

/**
 * Passive mode, data connections only ever to the host of the control connection: EPSV (which
 * names a port only) while the server does it, else PASV, whose address must be that host.
 * A PASV reply naming another host is refused: following it is the FTP bounce attack, and it is
 * also what a server behind NAT with a wrong passive address sends; either way someone has to
 * fix the server. (basic-ftp's own check would let any loopback address stand for another and
 * hides its error inside a generic "no transfer strategy works".)
 */
export async function passive(ftp: FTPContext, state: PassiveState): Promise<FTPResponse> {
  if (state.epsv !== false) {
    try {
      const res = await enterPassiveModeIPv6(ftp);
      state.epsv = true;
      return res;
    } catch (err) {
      if (state.epsv === true || !(err instanceof FTPError) || ftp.closed) throw err;
      state.epsv = false;
    }
  }
  const res = await ftp.request('PASV');
  const m = /(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})/.exec(res.message);
  if (!m) throw new TransportError('protocol', `PASV: cannot read the reply ${JSON.stringify(res.message.trim())}`);
  const [a, b, c, d, hi, lo] = m.slice(1).map((n) => Number.parseInt(n, 10)) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const target = `${a}.${b}.${c}.${d}`;
  const port = hi * 256 + lo;
  const control = (ftp.socket.remoteAddress ?? '').replace(/^::ffff:/i, '');
  if (target !== control) {
    throw new TransportError(
      'protocol',
      `the server's PASV reply sends the data connection to ${target}:${port}, not to ${control}, the server we ` +
        `are connected to; refused (a server behind NAT needs its passive address set, or EPSV enabled)`,
    );
  }
  await connectForPassiveTransfer(control, port, ftp);
  return res;
}
