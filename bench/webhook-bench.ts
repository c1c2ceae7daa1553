/**
 * Webhook benchmark on the local stack: MariaDB commit to a department's HTTP endpoint (a
 * local server in this process that answers 200), through reader, transformer, sink and
 * the department's BullMQ queue in Redis. Latency is exact per change: arrival at the
 * endpoint minus the source commit time it carries.
 *   npm run bench:webhook -- [--rows 50000]
 * Writes bench/results/latest.json (merged with other benches' fields).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { FileKeyring } from '@cityshare/shared';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';
import { benchServerId, isMain, peakRssMiB, quantileOf, waitFor, writeResults } from './support.js';

export interface WebhookFigures {
  webhook_rows_per_s: number;
  rows: number;
  seconds: number;
  p50_ms: number;
  p99_ms: number;
  sink_rss_mib: number;
}

export async function measureWebhook(o: { rows: number }, log: (line: string) => void = console.log): Promise<WebhookFigures> {
  const ROWS = o.rows;
  const latencies: number[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const now = Date.now();
      for (const c of (JSON.parse(body) as { changes: Array<{ source_ts_ms: string }> }).changes) latencies.push(now - Number(c.source_ts_ms));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));

  const run = new PipelineRun();
  await run.setUp();
  try {
    FileKeyring.ensure(run.keyringFile, ['department:hotline', 'webhook:hotline']);
    const env = {
      SINK_DEPARTMENT: 'hotline',
      READER_SNAPSHOT: 'never',
      CITYSHARE_PIPELINE: run.writePipelineFile('webhook-bench.yaml', {
        serverId: benchServerId(),
        tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
        departments: [{
          name: 'hotline',
          target: { kind: 'http', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, redisUrl: stack.redisUrl },
          grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: { mask: 'name' }, phone: { mask: 'phone' }, district: 'pass' } }],
        }],
      }),
    };
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    const sink = await run.start('sink', env);
    const started = Date.now();
    for (let id = 1; id <= ROWS; id += 5000) {
      const n = Math.min(5000, ROWS - id + 1);
      await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES ${Array.from({ length: n }, (_, i) => `(${id + i}, '市民', '110101199001010000', '13800000000', '海淀', NOW(6))`).join(', ')}`);
    }
    await waitFor(async () => latencies.length >= ROWS, 1_800_000);
    const seconds = (Date.now() - started) / 1000;
    const sorted = [...latencies].sort((a, b) => a - b);
    const p = (q: number) => quantileOf(sorted, q);
    const rss = peakRssMiB(sink.pid!);
    log(`webhook: ${ROWS} rows from MariaDB to the endpoint in ${seconds.toFixed(1)} s = ${Math.round(ROWS / seconds)} rows/s; latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms (burst); sink peak RSS ${rss} MiB`);
    return { webhook_rows_per_s: Math.round(ROWS / seconds), rows: ROWS, seconds, p50_ms: p(0.5), p99_ms: p(0.99), sink_rss_mib: rss };
  } finally {
    await run.tearDown();
    server.close();
  }
}

if (isMain(import.meta.url)) {
  const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '50000' } } });
  const { webhook_rows_per_s, ...rest } = await measureWebhook({ rows: Number(args.rows) });
  writeResults({ webhook_rows_per_s, webhook_bench: rest });
}
