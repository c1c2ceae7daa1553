import { hkdfSync } from 'node:crypto';
import type { Job, JobType, Queue } from 'bullmq';
import { keyNames, openValue, sealJson, type DataKey, type KeyProvider } from '@cityshare/shared';
import type { ChangeJson } from './change-json.js';
import type { HttpTargetConfig } from './http.target.js';

/**
 * What a department's webhook queue in Redis holds, shared by the sink and `cdc
 * webhook-replay`: which grant a batch was shared under (in clear, so a revoke can find
 * it without a key), its changes sealed, and how long finished batches are kept.
 */

/** What the endpoint receives: one table's changes, in source order. */
export interface WebhookBatch {
  department: string;
  table: string;
  changes: ChangeJson[];
}

/** A queued batch: the body the endpoint will receive, sealed, beside the grant it belongs to. */
export interface QueuedBatch {
  /** The grant (`source.db.table`) the changes were shared under. */
  grant: string;
  table: string;
  /** The WebhookBatch JSON, sealed with a subkey of `webhook:<department>` and bound to department, grant and table. */
  sealed: string;
}

/** Every state a job of ours can wait in (a paused queue's jobs are in `wait` too); `active` is left out: its worker holds a lock on it. */
export const WAITING_STATES: JobType[] = ['wait', 'delayed', 'prioritized', 'waiting-children', 'failed'];

const SEAL_LABEL = 'cityshare/webhook-queue/v1';
const subkeys = new WeakMap<DataKey, DataKey>();

/** Not the signing key itself: a subkey of it, so one key never serves both HMAC and AES-GCM. */
function sealKey(key: DataKey): DataKey {
  let subkey = subkeys.get(key);
  if (!subkey) subkeys.set(key, (subkey = { id: key.id, material: Buffer.from(hkdfSync('sha256', key.material, Buffer.alloc(0), SEAL_LABEL, 32)) }));
  return subkey;
}

const aad = (department: string, grant: string, table: string) => `webhook-queue:${department}:${grant}:${table}`;

export function sealBatch(keys: KeyProvider, grant: string, batch: WebhookBatch): QueuedBatch {
  const key = sealKey(keys.activeKey(keyNames.webhook(batch.department)));
  return { grant, table: batch.table, sealed: sealJson(key, Buffer.from(JSON.stringify(batch), 'utf8'), aad(batch.department, grant, batch.table)) };
}

/** The batch as queued; DECRYPT_FAILED when it was not sealed for this department, grant and table. */
export function openBatch(keys: KeyProvider, department: string, job: QueuedBatch): WebhookBatch {
  const list = keyNames.webhook(department);
  const sealKeys: KeyProvider = {
    activeKey: () => sealKey(keys.activeKey(list)),
    keyById: (id) => sealKey(keys.keyOf(list, id)),
    keyOf: (_, id) => sealKey(keys.keyOf(list, id)),
  };
  return openValue(sealKeys, job.sealed, aad(department, job.grant, job.table)) as WebhookBatch;
}

/** The grants of a department in force, as queued batches name them. */
export function grantsInForce(department: { grants: Array<{ table: string }> }): Set<string> {
  return new Set(department.grants.map((g) => g.table));
}

/**
 * Removes the waiting, delayed and dead-lettered batches whose grant is not in `inForce`
 * (revoked, or a job without one); returns how many per grant. A job that turned active
 * meanwhile cannot be removed: its worker refuses it before sending.
 */
export async function purgeRevoked(queue: Queue, inForce: ReadonlySet<string>, states: JobType[] = WAITING_STATES): Promise<Map<string, number>> {
  const purged = new Map<string, number>();
  const jobs = (await queue.getJobs(states)) as Array<Job<Partial<QueuedBatch>> | undefined>;
  for (const job of jobs) {
    if (!job || isInForce(job.data, inForce)) continue;
    const removed = await job.remove().then(() => true, () => false);
    const grant = job.data.grant ?? '(none)';
    if (removed) purged.set(grant, (purged.get(grant) ?? 0) + 1);
  }
  return purged;
}

export function isInForce(job: Partial<QueuedBatch>, inForce: ReadonlySet<string>): boolean {
  return job.grant !== undefined && inForce.has(job.grant);
}

/** BullMQ's removeOnComplete/removeOnFail from the target's retention: by age and by count, whichever comes first. */
export function retentionOptions(retention: HttpTargetConfig['retention']): { removeOnComplete: { age: number; count: number }; removeOnFail: { age: number; count: number } } {
  return {
    removeOnComplete: { age: retention.completed.ageSeconds, count: retention.completed.count },
    removeOnFail: { age: retention.failed.ageSeconds, count: retention.failed.count },
  };
}
