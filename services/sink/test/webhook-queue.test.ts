import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FileKeyring, isCdcError, keyNames } from '@cityshare/shared';
import { grantsInForce, isInForce, openBatch, retentionOptions, sealBatch, type WebhookBatch } from '../src/targets/webhook-queue.js';

const key = () => ({ id: `webhook-hotline-${randomBytes(3).toString('hex')}`, material: randomBytes(32).toString('base64') });
const batch: WebhookBatch = { department: 'hotline', table: 'citizens', changes: [{ op: 'c', version: '00000001.0000000001.00000', source_ts_ms: '1', deleted: false, values: { id: '1', name: '王**', district: '海淀' } }] };
const grant = 'cityhub.civil.citizens';

describe('webhook queue', () => {
  it('seals a batch so that Redis holds no value of it, and opens it again', () => {
    const keys = new FileKeyring({ version: 1, keys: { [keyNames.webhook('hotline')]: [key()] } });
    const queued = sealBatch(keys, grant, batch);
    expect(JSON.stringify(queued)).not.toMatch(/海淀|王|district/);
    expect(queued).toMatchObject({ grant, table: 'citizens' });
    expect(openBatch(keys, 'hotline', queued)).toEqual(batch);
  });

  it('does not open a batch relabelled to another grant, or under another department', () => {
    const keys = new FileKeyring({ version: 1, keys: { [keyNames.webhook('hotline')]: [key()], [keyNames.webhook('health')]: [key()] } });
    const queued = sealBatch(keys, grant, batch);
    for (const [department, job] of [['hotline', { ...queued, grant: 'cityhub.civil.other' }], ['health', queued]] as const) {
      let err: unknown;
      try {
        openBatch(keys, department, job);
      } catch (e) {
        err = e;
      }
      expect(isCdcError(err, 'DECRYPT_FAILED') || isCdcError(err, 'KEY_NOT_FOUND')).toBe(true);
    }
  });

  it('opens batches sealed before a rotation of the webhook key', () => {
    const first = key();
    const before = new FileKeyring({ version: 1, keys: { [keyNames.webhook('hotline')]: [first] } });
    const queued = sealBatch(before, grant, batch);
    const after = new FileKeyring({ version: 1, keys: { [keyNames.webhook('hotline')]: [first, key()] } });
    expect(openBatch(after, 'hotline', queued)).toEqual(batch);
  });

  it('counts a batch in force only under a grant of the department, never one without a grant', () => {
    const inForce = grantsInForce({ grants: [{ table: grant }] });
    expect(isInForce({ grant }, inForce)).toBe(true);
    expect(isInForce({ grant: 'cityhub.civil.other' }, inForce)).toBe(false);
    expect(isInForce({}, inForce)).toBe(false);
  });

  it('bounds finished batches by age and by count', () => {
    expect(retentionOptions({ completed: { ageSeconds: 60, count: 5 }, failed: { ageSeconds: 3600, count: 50 } })).toEqual({ removeOnComplete: { age: 60, count: 5 }, removeOnFail: { age: 3600, count: 50 } });
  });
});
