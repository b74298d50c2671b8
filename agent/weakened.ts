// Settings that switch a protection off. Each is allowed (a test server, an old office box), none
// may be forgotten: `check` prints them as WARN lines and every cycle of the route logs them.
import type { RouteConfig } from './config.js';

/** The route's weakened checks in plain words, most serious first; empty when there are none. */
export function weakenedChecks(route: RouteConfig): string[] {
  const p = route.profile;
  const out: string[] = [];
  const clear = 'the password and the packages cross the network unencrypted';
  const unverified =
    'TLS verification is OFF (tls.rejectUnauthorized: false): the server is not proven to be the office; ' +
    'anyone on the way can read and change packages and the password';
  switch (p.type) {
    case 'ftp':
      if (p.security === 'none') out.push(`FTP without TLS (security: none): ${clear}`);
      else if (!p.tls.rejectUnauthorized) out.push(unverified);
      break;
    case 'sftp':
      if (p.hostKey === 'any')
        out.push(
          'SSH host key is not checked (hostKey: any): the server is not proven to be the office; ' +
            'pin its key (sprelay check prints it)',
        );
      break;
    case 'email': {
      const server = route.direction === 'out' ? p.smtp : p.imap;
      const proto = route.direction === 'out' ? 'SMTP' : 'IMAP';
      if (server?.security === 'none') out.push(`${proto} without TLS (security: none): ${clear}`);
      else if (!p.tls.rejectUnauthorized) out.push(unverified);
      break;
    }
    case 'lan':
      break;
  }
  return out;
}
