/**
 * System-neutral end-to-end latency probe: what a department would see, measured the same
 * way for cityshare and for any peer (Debezium, ...). It needs nothing from the pipeline
 * under test, only the target table in PostgreSQL and the commit times the load side saw.
 *
 * Method
 * - The load side inserts rows with increasing integer ids and, when the driver returns from
 *   the autocommitted INSERT (the commit is acknowledged), calls `expect(fromId, toId, Date.now())`.
 * - The probe polls the target table every `intervalMs` (default 50 ms) on its own connection
 *   for ids it still waits for, and takes the time a poll was *issued* as the arrival time of
 *   every id that poll returns for the first time. latency = arrival - commit (same clock,
 *   same process). A row is visible in PostgreSQL only once the sink committed it, so this is
 *   commit-to-commit latency; each value is an upper bound by at most one poll interval
 *   (plus the query's start-up), identically for every system measured.
 * - Each poll reads `id BETWEEN <smallest waited-for id> AND <largest expected id>` by the
 *   primary key; rows seen before are skipped. While rows arrive roughly in id order (one
 *   source, key-partitioned topics) that is about the rows that arrived since the previous
 *   poll, so the probe stays cheap at a steady rate and under a backlog alike. A missing table
 *   (the sink creates it on its first row) counts as "nothing arrived yet".
 *
 * Usage
 *   const probe = new LatencyProbe({ connectionString, table: '"schema".citizens' });
 *   await probe.start();
 *   ...INSERT ids a..b...; probe.expect(a, b, Date.now());
 *   await probe.waitForAll(600_000);
 *   const report = await probe.stop();   // p50/p95/p99, per-second series, ...
 *
 * `waitForRowCount` is the matching burst helper: the time at which `count(*)` of an id
 * range first reached the expected number, polled at the same interval.
 */
import pg from 'pg';

export interface LatencyProbeOptions {
  /** PostgreSQL connection string of the target database. */
  connectionString: string;
  /** The target table, already quoted/qualified as SQL, e.g. `"t1_dept_health".citizens`. */
  table: string;
  /** Integer key column (default `id`), quoted as SQL if needed. */
  idColumn?: string;
  /** Poll interval in ms (default 50). */
  intervalMs?: number;
}

export interface LatencyReport {
  /** Rows whose arrival was observed. */
  count: number;
  /** Rows expected but not seen when the probe stopped. */
  missing: number;
  p50_ms: number;
  p95_ms: number;
  p99_ms: number;
  max_ms: number;
  mean_ms: number;
  /**
   * Per second of commit time (t_s = whole seconds since the first expected commit): rows
   * committed in that second, their mean and maximum latency.
   */
  series: Array<{ t_s: number; count: number; mean_ms: number; max_ms: number }>;
  /** Wall time (ms since epoch) of the poll that saw the last row arrive; 0 if none. */
  last_arrival_ms: number;
  /** Polls issued and their mean duration, to judge the probe's own cost. */
  polls: number;
  mean_poll_ms: number;
}

/** Nearest-rank quantile of an ascending array. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isMissingTable = (err: unknown) => (err as { code?: string }).code === '42P01';

export class LatencyProbe {
  private readonly client: pg.Client;
  private readonly idColumn: string;
  private readonly intervalMs: number;
  /** Waited-for id -> commit time; ids are added in increasing order, so the first key is the smallest. */
  private readonly pending = new Map<number, number>();
  private readonly observed: Array<{ committedAt: number; latency: number }> = [];
  private firstCommit = Infinity;
  private maxExpected = -Infinity;
  private lastArrival = 0;
  private polls = 0;
  private pollMs = 0;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private failure: Error | undefined;

  constructor(private readonly o: LatencyProbeOptions) {
    this.client = new pg.Client({ connectionString: o.connectionString });
    this.idColumn = o.idColumn ?? 'id';
    this.intervalMs = o.intervalMs ?? 50;
  }

  async start(): Promise<void> {
    await this.client.connect();
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Rows `fromId..toId` (inclusive) were committed at `committedAtMs` (Date.now() after the
   * INSERT returned). Call it with increasing ids (the probe takes the first waited-for id as the smallest).
   */
  expect(fromId: number, toId: number, committedAtMs: number): void {
    for (let id = fromId; id <= toId; id++) this.pending.set(id, committedAtMs);
    this.firstCommit = Math.min(this.firstCommit, committedAtMs);
    this.maxExpected = Math.max(this.maxExpected, toId);
  }

  get waiting(): number {
    return this.pending.size;
  }

  /** Every observed row so far: its commit time (ms since epoch) and latency (ms), in arrival order. */
  samples(): ReadonlyArray<{ committedAt: number; latency: number }> {
    return this.observed;
  }

  /** Resolves once every expected row arrived; rejects after `timeoutMs` or when `check` throws. */
  async waitForAll(timeoutMs: number, check?: () => Promise<void>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastCheck = 0;
    while (this.pending.size > 0) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error(`latency probe: ${this.pending.size} rows still missing after ${timeoutMs} ms`);
      if (check && Date.now() - lastCheck > 1000) {
        lastCheck = Date.now();
        await check();
      }
      await sleep(this.intervalMs);
    }
  }

  async stop(): Promise<LatencyReport> {
    this.running = false;
    await this.loop;
    await this.client.end().catch(() => undefined);
    const latencies = this.observed.map((o) => o.latency).sort((a, b) => a - b);
    const buckets = new Map<number, { count: number; sum: number; max: number }>();
    for (const { committedAt, latency } of this.observed) {
      const t = Math.floor((committedAt - this.firstCommit) / 1000);
      const b = buckets.get(t) ?? { count: 0, sum: 0, max: 0 };
      b.count++;
      b.sum += latency;
      b.max = Math.max(b.max, latency);
      buckets.set(t, b);
    }
    return {
      count: latencies.length,
      missing: this.pending.size,
      p50_ms: quantile(latencies, 0.5),
      p95_ms: quantile(latencies, 0.95),
      p99_ms: quantile(latencies, 0.99),
      max_ms: latencies.length ? latencies[latencies.length - 1]! : NaN,
      mean_ms: latencies.length ? Math.round(latencies.reduce((a, b) => a + b, 0) / latencies.length) : NaN,
      series: [...buckets.entries()].sort(([a], [b]) => a - b).map(([t_s, b]) => ({ t_s, count: b.count, mean_ms: Math.round(b.sum / b.count), max_ms: b.max })),
      last_arrival_ms: this.lastArrival,
      polls: this.polls,
      mean_poll_ms: this.polls ? Math.round((this.pollMs / this.polls) * 10) / 10 : 0,
    };
  }

  private async run(): Promise<void> {
    while (this.running) {
      const issuedAt = Date.now();
      if (this.pending.size > 0) {
        try {
          await this.poll(issuedAt);
        } catch (err) {
          if (!isMissingTable(err)) {
            this.failure = err as Error;
            return;
          }
        }
        this.polls++;
        this.pollMs += Date.now() - issuedAt;
      }
      const next = issuedAt + this.intervalMs;
      if (Date.now() < next) await sleep(next - Date.now());
    }
  }

  private async poll(issuedAt: number): Promise<void> {
    const smallest = this.pending.keys().next().value as number; // ids are expected in increasing order
    const { rows } = await this.client.query<{ id: string }>(`SELECT ${this.idColumn} AS id FROM ${this.o.table} WHERE ${this.idColumn} BETWEEN $1 AND $2`, [smallest, this.maxExpected]);
    for (const r of rows) {
      const id = Number(r.id);
      const committedAt = this.pending.get(id);
      // Unknown, already seen, or expected only after this poll was issued: the next poll counts it.
      if (committedAt === undefined || committedAt > issuedAt) continue;
      this.pending.delete(id);
      this.observed.push({ committedAt, latency: issuedAt - committedAt });
      this.lastArrival = issuedAt;
    }
  }
}

/**
 * Polls `SELECT count(*) … WHERE id BETWEEN fromId AND toId` every `intervalMs` until it
 * reaches `toId - fromId + 1`; returns the wall time at which that poll was issued. For a
 * burst: rows/s = rows / (returned time - time the first INSERT was sent). `check` runs
 * about once a second (e.g. to fail fast when the system under test died).
 */
export async function waitForRowCount(
  client: pg.Client,
  o: { table: string; idColumn?: string; fromId: number; toId: number; intervalMs?: number; timeoutMs: number; check?: () => Promise<void> },
): Promise<number> {
  const id = o.idColumn ?? 'id';
  const want = o.toId - o.fromId + 1;
  const deadline = Date.now() + o.timeoutMs;
  let lastCheck = 0;
  for (;;) {
    const issuedAt = Date.now();
    const n = await client
      .query<{ n: string }>(`SELECT count(*) AS n FROM ${o.table} WHERE ${id} BETWEEN $1 AND $2`, [o.fromId, o.toId])
      .then((r) => Number(r.rows[0]!.n), (err: unknown) => {
        if (isMissingTable(err)) return 0;
        throw err;
      });
    if (n >= want) return issuedAt;
    if (issuedAt > deadline) throw new Error(`only ${n} of ${want} rows in ${o.table} after ${o.timeoutMs} ms`);
    if (o.check && issuedAt - lastCheck > 1000) {
      lastCheck = issuedAt;
      await o.check();
    }
    const next = issuedAt + (o.intervalMs ?? 50);
    if (Date.now() < next) await sleep(next - Date.now());
  }
}
