import { keyNames, keysOfList, queues, type DepartmentConfig, type KeyProvider, type Logger } from '@cityshare/shared';
import type { SinkMetrics } from '../sink-metrics.js';
import { ExportTarget } from './export.target.js';
import { MysqlTarget } from './mysql.target.js';
import { PostgresTarget } from './postgres.target.js';
import { RabbitmqTarget } from './rabbitmq.target.js';
import type { TargetOutage } from './connection-faults.js';
import type { Target } from './target.js';
import { grantsInForce } from './webhook-queue.js';
import { WebhookTarget } from './webhook.target.js';

export type { Target } from './target.js';

export interface TargetContext {
  prefix: string;
  keys: KeyProvider;
  logger: Logger;
  metrics: SinkMetrics;
  /** Kept across the runs the service runtime restarts: an outage of the target is logged once. */
  outage?: TargetOutage;
}

/** The department's target as its pipeline file describes it. */
export function createTarget(department: DepartmentConfig, ctx: TargetContext): Target {
  const target = department.target;
  const labels = { department: department.name, target: target.kind };
  switch (target.kind) {
    case 'postgres': return new PostgresTarget({ url: target.url, schema: target.schema, softDelete: target.softDelete, ssl: target.ssl }, ctx.logger, ctx.outage);
    case 'mysql': return new MysqlTarget({ url: target.url, softDelete: target.softDelete, ssl: target.ssl }, ctx.logger);
    case 'rabbitmq': return new RabbitmqTarget({ department: department.name, url: target.url, exchange: target.exchange, exchangeType: target.exchangeType, ca: target.ca }, ctx.logger, ctx.outage);
    case 'export':
      return new ExportTarget({
        department: department.name,
        stagingUrl: target.staging.url,
        stagingSchema: target.staging.schema,
        stagingSsl: target.staging.ssl,
        directory: target.directory,
        ...(target.pushUrl ? { pushUrl: target.pushUrl, secret: ctx.keys.activeKey(keyNames.webhook(department.name)).material } : {}),
        schedule: target.schedule,
        redisUrl: target.redisUrl,
        redisTls: target.redisTls,
        queueName: queues.export(ctx.prefix, department.name),
        onExport: (_table, rows) => ctx.metrics.exported.inc(labels, rows),
      }, ctx.logger, ctx.outage);
    case 'http':
      return new WebhookTarget({
        department: department.name,
        url: target.url,
        secret: ctx.keys.activeKey(keyNames.webhook(department.name)).material,
        redisUrl: target.redisUrl,
        redisTls: target.redisTls,
        queueName: queues.webhook(ctx.prefix, department.name),
        maxAttempts: target.maxAttempts,
        timeoutMs: target.timeoutMs,
        backoffMs: target.backoffMs,
        keys: keysOfList(ctx.keys, keyNames.webhook(department.name)),
        grants: grantsInForce(department),
        retention: target.retention,
        onRetry: () => ctx.metrics.retries.inc(labels),
        onDeadLetter: () => ctx.metrics.dlq.inc(labels),
        onPurged: (batches) => ctx.metrics.webhookPurged.inc(labels, batches),
      }, ctx.logger, ctx.outage);
  }
}
