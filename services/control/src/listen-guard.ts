import { isIP } from 'node:net';
import { CdcError } from '@cityshare/shared';

/** Whether an address only this machine can reach: 127.0.0.0/8, ::1 (also IPv4-mapped) or localhost. */
export function isLoopback(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return isIP(h) === 6 && /^(0{0,4}:){7}0{0,3}1$|^::1$/.test(h);
}

/**
 * The API carries bearer tokens and policy changes: on an address other machines can
 * reach it must be HTTPS. Refuses to listen otherwise, saying what to set.
 */
export function assertSafeListen(host: string, tls: boolean): void {
  if (tls || isLoopback(host)) return;
  throw new CdcError(
    'CONFIG_INVALID',
    `CONTROL_HOST=${host} is reachable from other machines but the API would serve plain HTTP (bearer tokens in clear): ` +
      'set CONTROL_TLS_CERT and CONTROL_TLS_KEY to serve HTTPS, or listen on a loopback address (127.0.0.1, ::1) behind a TLS-terminating proxy',
    { details: { host } },
  );
}
