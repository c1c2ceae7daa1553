import { createHmac } from 'node:crypto';

/**
 * How the sink signs what it POSTs to a department (the http target's batches, the export
 * target's files), with the department's key list `webhook:<department>`.
 */

/** Signature header: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe-style receivers check it. */
export function signWebhook(secret: Buffer, body: string, t = Math.floor(Date.now() / 1000)): string {
  const signer = webhookSigner(secret, t);
  signer.update(body);
  return signer.header();
}

/** The same signature over a body fed in pieces (a streamed export file). */
export function webhookSigner(secret: Buffer, t = Math.floor(Date.now() / 1000)) {
  const mac = createHmac('sha256', secret).update(`${t}.`);
  return { update: (piece: string | Buffer) => void mac.update(piece), header: () => `t=${t},v1=${mac.digest('hex')}` };
}
