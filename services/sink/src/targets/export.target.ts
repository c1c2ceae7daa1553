import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { Queue, Worker } from 'bullmq';
import type pg from 'pg';
import { z } from 'zod';
import { CdcError, configName, keyNames, postgresTls, queues, redactUrl, redisTlsOptions, secretSetting, withoutSecrets, type Logger, type PostgresTlsConfig } from '@cityshare/shared';
import { ConnectionFaults, hearPoolErrors, type TargetOutage } from './connection-faults.js';
import { PostgresTarget, loadPg, postgresPoolConfig } from './postgres.target.js';
import { TARGET_META, type ApplyResult, type RowChange, type Target, type TargetTable } from './target.js';
import { defineTarget } from './target-definition.js';
import { redisTls, redisTlsNeedsRediss, withPostgresTls } from './target-settings.js';
import { webhookSigner } from './webhook-signature.js';

/**
 * kind `export`: files of the department's tables on a schedule, the current state kept in a
 * PostgreSQL staging schema between two exports (a table target: its rows are there).
 */
export const exportDefinition = defineTarget({
  config: z.strictObject({
    kind: z.literal('export'),
    staging: z.strictObject({
      url: z.string().min(1).describe('postgres:// connection string').meta(secretSetting),
      schema: configName.describe('schema holding the current state between exports'),
      ssl: postgresTls.optional(),
    }).superRefine(withPostgresTls).describe("PostgreSQL where the department's current state is kept between exports"),
    directory: z.string().min(1).describe('snapshot files go to <directory>/<table>/<table>-<time>.jsonl'),
    pushUrl: z.string().url().optional().describe('endpoint each file is POSTed to, signed like webhooks (keyring key webhook:<department>)').meta(secretSetting),
    schedule: z
      .union([z.strictObject({ cron: z.string().min(1) }), z.strictObject({ everyMs: z.number().int().min(1000) })])
      .describe('when to export: a cron pattern (e.g. "0 2 * * *" for 02:00 daily) or a period in milliseconds'),
    redisUrl: z.string().default('redis://127.0.0.1:6379').describe('Redis of the BullMQ job scheduler: redis:// or rediss:// (TLS), with a password as rediss://:password@host:6380').meta(secretSetting),
    redisTls,
  }).superRefine(redisTlsNeedsRediss),
  capabilities: { delivery: 'table', signs: (t) => t.pushUrl !== undefined },
  tlsFiles: (t) => [{ at: 'staging.ssl', files: t.staging.ssl }, { at: 'redisTls', files: t.redisTls }],
  create: (t, ctx) => new ExportTarget({
    department: ctx.department.name,
    stagingUrl: t.staging.url,
    stagingSchema: t.staging.schema,
    stagingSsl: t.staging.ssl,
    directory: t.directory,
    ...(t.pushUrl ? { pushUrl: t.pushUrl, secret: ctx.keys.activeKey(keyNames.webhook(ctx.department.name)).material } : {}),
    schedule: t.schedule,
    redisUrl: t.redisUrl,
    redisTls: t.redisTls,
    queueName: queues.export(ctx.prefix, ctx.department.name),
    onExport: (_table, rows) => ctx.metrics.exported.inc(ctx.labels, rows),
  }, ctx.logger, ctx.outage),
  // What the department is exported is its staging tables: read back from there.
  readBack: (t, ctx) => new PostgresTarget({ url: t.staging.url, schema: t.staging.schema, ssl: t.staging.ssl }, ctx.logger).readBack,
});

export interface ExportTargetOptions {
  department: string;
  /** PostgreSQL schema holding the department's current state between exports. */
  stagingUrl: string;
  stagingSchema: string;
  stagingSsl?: PostgresTlsConfig | undefined;
  /** Directory the snapshot files are written to: `<directory>/<table>/<table>-<time>.jsonl`. */
  directory: string;
  /** Optional endpoint each file is POSTed to, signed like webhooks. */
  pushUrl?: string;
  secret?: Buffer;
  /** Schedule: a cron pattern (with seconds if 6 fields) or a period in milliseconds. */
  schedule: { cron?: string; everyMs?: number };
  redisUrl: string;
  /** CA of a rediss:// Redis not signed by a system CA. */
  redisTls?: { ca: string } | undefined;
  queueName: string;
  onExport?: (table: string, rows: number) => void;
}

const q = (ident: string) => `"${ident.replace(/"/g, '""')}"`;

/** Rows fetched from the staging table at a time: the export holds one page, whatever the table's size. */
const PAGE_ROWS = 1000;

/**
 * For departments that take data on a schedule rather than as a stream: changes keep the
 * department's current state in a staging schema (a PostgreSQL target, with its version
 * guard), and a BullMQ job scheduler in Redis writes a snapshot of every table at each
 * tick — one JSON object per row, data columns only — and POSTs it to `pushUrl` when set
 * (signed like webhooks, tried again by BullMQ with backoff). One scheduler per department,
 * whatever the number of sink instances; a file is written to a temporary name and renamed.
 * Tables are read through a cursor a page at a time and the file is streamed to disk and to
 * `pushUrl`, so memory does not grow with the table; files are readable by their owner only
 * (0600, directories 0700): they hold the department's data.
 */
export class ExportTarget implements Target {
  private readonly staging: PostgresTarget;
  private pool: pg.Pool | undefined;
  private queue: Queue | undefined;
  private worker: Worker | undefined;
  private readonly faults: ConnectionFaults;

  constructor(private readonly options: ExportTargetOptions, private readonly logger: Logger, outage?: TargetOutage) {
    this.faults = new ConnectionFaults(logger, `the export staging ${redactUrl(options.stagingUrl)} or its Redis ${redactUrl(options.redisUrl)}`, (m) => withoutSecrets(m, { urls: [options.stagingUrl, options.redisUrl] }), outage);
    this.staging = new PostgresTarget({ url: options.stagingUrl, schema: options.stagingSchema, ssl: options.stagingSsl }, logger, outage);
  }

  async connect(): Promise<void> {
    await this.staging.connect();
    // pg and BullMQ loaded here, not at import (see target-definition.ts).
    const [pg, { Queue, Worker }] = await Promise.all([loadPg(), import('bullmq')]);
    if (!this.pool) {
      // DATE and TIMESTAMP (without zone) as the text PostgreSQL holds, not shifted through a local Date.
      const raw = (oid: number) => (oid === 1082 || oid === 1114 ? (v: string) => v : pg.types.getTypeParser(oid));
      const pool = new pg.Pool({ ...postgresPoolConfig(this.options.stagingUrl, this.options.stagingSsl, 2), types: { getTypeParser: raw as typeof pg.types.getTypeParser } });
      hearPoolErrors(pool, this.faults);
      this.pool = pool;
    }
    const connection = { url: this.options.redisUrl, maxRetriesPerRequest: null, ...redisTlsOptions(this.options.redisTls, 'redisTls') };
    this.queue = new Queue(this.options.queueName, { connection });
    this.queue.on('error', this.faults.listener);
    await this.queue.waitUntilReady().catch((cause: Error) => {
      throw new CdcError('TARGET_UNREACHABLE', `Redis for the export schedule is not reachable at ${redactUrl(this.options.redisUrl)}: ${withoutSecrets(cause.message, { urls: [this.options.redisUrl] })}`, { cause });
    });
    const repeat = this.options.schedule.cron ? { pattern: this.options.schedule.cron } : { every: this.options.schedule.everyMs ?? 86_400_000 };
    await this.queue.upsertJobScheduler('export', repeat, { name: 'export', opts: { attempts: 5, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: 100, removeOnFail: 100 } });
    this.worker = new Worker(this.options.queueName, () => this.exportAll(), { connection, concurrency: 1 });
    this.worker.on('error', this.faults.listener);
    this.worker.on('failed', (_job, err) => this.logger.error({ reason: err.message }, 'scheduled export failed'));
  }

  ensureTable(table: TargetTable): Promise<void> {
    return this.staging.ensureTable(table);
  }

  apply(table: TargetTable, changes: RowChange[]): Promise<ApplyResult> {
    return this.staging.apply(table, changes);
  }

  /** One snapshot file per staging table, then pushed if an endpoint is set. */
  private async exportAll(): Promise<void> {
    const { rows: tables } = await this.pool!.query<{ name: string }>(
      "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
      [this.options.stagingSchema],
    );
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    for (const { name } of tables) {
      const dir = join(this.options.directory, name);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, `${name}-${stamp}.jsonl`);
      const signer = this.options.pushUrl ? webhookSigner(this.options.secret!) : undefined;
      const rows = await this.writeSnapshot(name, `${file}.tmp`, (piece) => signer?.update(piece));
      renameSync(`${file}.tmp`, file);
      if (this.options.pushUrl) {
        const res = await fetch(this.options.pushUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson', 'content-length': String(statSync(file).size), 'x-cityshare-signature': signer!.header(), 'x-cityshare-table': name, 'x-cityshare-export': stamp },
          body: Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>,
          duplex: 'half',
          signal: AbortSignal.timeout(60_000),
        } as RequestInit);
        await res.arrayBuffer().catch(() => undefined);
        // The job fails and BullMQ runs it again at the next schedule; the file stays on disk meanwhile.
        if (!res.ok) throw new CdcError(res.status >= 500 ? 'TARGET_UNREACHABLE' : 'TARGET_REJECTED', `export push of ${name} to ${redactUrl(this.options.pushUrl)} got HTTP ${res.status}; the file stays in ${dir}`);
      }
      this.options.onExport?.(name, rows);
      this.logger.info({ table: name, rows, file }, 'scheduled export written');
    }
  }

  /** Writes one table as JSON lines to `path` (0600), a cursor page at a time; each written piece also goes to `onPiece`. */
  private async writeSnapshot(table: string, path: string, onPiece: (piece: string) => void): Promise<number> {
    // A temporary file left by a crash keeps its mode if reused: start from a new one.
    rmSync(path, { force: true });
    const out = createWriteStream(path, { flags: 'wx', mode: 0o600 });
    const client = await this.pool!.connect();
    let rows = 0;
    try {
      await client.query('BEGIN READ ONLY');
      await client.query(`DECLARE snapshot NO SCROLL CURSOR FOR SELECT * FROM ${q(this.options.stagingSchema)}.${q(table)} ORDER BY 1`);
      for (;;) {
        const page = await client.query<Record<string, unknown>>(`FETCH ${PAGE_ROWS} FROM snapshot`);
        if (page.rows.length === 0) break;
        rows += page.rows.length;
        const piece = page.rows.map((r) => `${JSON.stringify(dataOf(r))}\n`).join('');
        onPiece(piece);
        if (!out.write(piece)) await once(out, 'drain');
      }
      await client.query('COMMIT');
      out.end();
      await finished(out);
      return rows;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      out.destroy();
      rmSync(path, { force: true });
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue?.close();
    await this.pool?.end();
    await this.staging.close();
  }
}

/**
 * A staged row as exported: the data columns, instants as ISO text, bytes as base64. A row
 * of a change log (a table without a key, staged with `__op`) keeps `__version`, its key:
 * its encrypted values are bound to it (envelope.ts).
 */
function dataOf(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const changeLog = TARGET_META.op in row;
  for (const [k, v] of Object.entries(row)) {
    if (k.startsWith('__') && !(changeLog && k === TARGET_META.version)) continue;
    out[k] = v instanceof Date ? v.toISOString() : Buffer.isBuffer(v) ? v.toString('base64') : v;
  }
  return out;
}
