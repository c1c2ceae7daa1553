import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { readAllMessages } from './support/kafka-peek.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

/**
 * Scale-out and crash recovery: instances started with the same settings share a
 * department's partitions; one killed with -9 holds up only its own partitions, and only
 * for its 8 s group session; a restarted one delivers again within seconds; an instance
 * that stalled (SIGSTOP) past its session is fenced by the one that took its partitions,
 * says so on /healthz, and rejoins instead of idling as a zombie. Nothing lost, nothing twice.
 */
describe('scale-out: two transformers and two sinks for one department', () => {
  const run = new PipelineRun();
  let pipelineFile = '';
  const env = () => ({ CITYSHARE_PIPELINE: pipelineFile });
  let nextId = 1;
  const written: number[] = [];
  const insert = async (count: number) => {
    const ids = Array.from({ length: count }, () => nextId++);
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES ${ids.map((id) => `(${id}, '王小明', '110101199001010000', '13800000000', 'd${id}', NOW(6))`).join(', ')}`);
    written.push(...ids);
    return ids;
  };
  const delivered = async () => new Set(((await run.pg.query(`SELECT id FROM "${run.pgSchema}".citizens`).catch(() => ({ rows: [] }))).rows as Array<{ id: string }>).map((r) => Number(r.id)));
  const allDelivered = async (ids: number[]) => {
    const have = await delivered();
    return ids.every((id) => have.has(id));
  };
  const probe = async (svc: ServiceProcess, path: 'readyz' | 'healthz') => {
    const res = await fetch(`http://127.0.0.1:${svc.port}/${path}`);
    return { status: res.status, body: await res.text() };
  };
  const metric = async (svc: ServiceProcess, name: string) =>
    [...(await svc.metrics()).matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  const partitionsOf = (svc: ServiceProcess) => Object.values(svc.assignment() ?? {}).flat().sort();
  /** Milliseconds from now until `check` holds. */
  const timeUntil = async (check: () => Promise<boolean>, timeoutMs: number) => {
    const from = Date.now();
    await eventually(async () => expect(await check()).toBe(true), timeoutMs, 100);
    return Date.now() - from;
  };

  let transformers: ServiceProcess[] = [];
  let sinks: ServiceProcess[] = [];

  beforeAll(async () => {
    await run.setUp();
    pipelineFile = run.writePipelineFile('scale-out.yaml', {
      serverId: 6401,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{ name: 'health', target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema }, grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', district: 'pass' } }] }],
    });
    await run.start('cdc-reader', env());
  });

  afterAll(async () => {
    for (const svc of run.services) svc.thaw();
    await run.tearDown();
  });

  it('instances started with the same settings share the work; none fences another or idles', async () => {
    transformers = [await run.start('transformer', env()), await run.start('transformer', env())];
    sinks = [await run.start('sink', env()), await run.start('sink', env())];
    // Three partitions over two members each: both instances of each stage hold some. Rows are
    // written once both have joined (on a busy host the second may join seconds after it is
    // ready), so each instance has rows of its own partitions to work on.
    await eventually(async () => {
      for (const svc of [...transformers, ...sinks]) expect(partitionsOf(svc).length).toBeGreaterThan(0);
      expect([...partitionsOf(transformers[0]!), ...partitionsOf(transformers[1]!)].sort()).toEqual([0, 1, 2]);
      expect([...partitionsOf(sinks[0]!), ...partitionsOf(sinks[1]!)].sort()).toEqual([0, 1, 2]);
    }, 30_000, 250);
    const ids = await insert(300);
    await eventually(async () => expect(await allDelivered(ids)).toBe(true), 60_000, 250);
    for (const t of transformers) expect(await metric(t, 'cityshare_transformer_records_out_total')).toBeGreaterThan(0);
    for (const s of sinks) expect(await metric(s, 'cityshare_sink_rows_applied_total')).toBeGreaterThan(0);
    for (const svc of [...transformers, ...sinks]) expect(await probe(svc, 'readyz')).toEqual({ status: 200, body: 'ready\n' });
  });

  it('one of each killed with -9: the survivors keep delivering their own partitions, and take the rest over within the session timeout', async () => {
    // Survivors holding the same partitions, so rows of those flow through both stages without a rebalance.
    const [keepT, lostT] = partitionsOf(transformers[0]!).length === 2 ? [transformers[0]!, transformers[1]!] : [transformers[1]!, transformers[0]!];
    const [keepS, lostS] = partitionsOf(sinks[0]!).length === 2 ? [sinks[0]!, sinks[1]!] : [sinks[1]!, sinks[0]!];
    expect(partitionsOf(keepT)).toEqual(partitionsOf(keepS));
    await Promise.all([lostT.kill(), lostS.kill()]);
    const ids = await insert(60);
    // Before the dead members' 8 s sessions end, rows of the survivors' partitions arrive.
    const firstRows = await timeUntil(async () => [...(await delivered())].some((id) => ids.includes(id)), 20_000);
    const allRows = await timeUntil(() => allDelivered(ids), 60_000);
    process.stdout.write(`scale-out: after kill -9 of one transformer and one sink, first rows of the survivors' partitions in ${firstRows} ms, every row in ${allRows} ms\n`);
    expect(firstRows).toBeLessThan(6_000);
    // kafkajs' default 30 s session would hold the dead members' partitions for half a minute.
    expect(allRows).toBeLessThan(20_000);
    await eventually(async () => {
      expect(partitionsOf(keepT)).toEqual([0, 1, 2]);
      expect(partitionsOf(keepS)).toEqual([0, 1, 2]);
    }, 10_000, 250);
    transformers = [keepT];
    sinks = [keepS];
  });

  it('killed with -9 and restarted at once: a transformer and a sink deliver again within seconds', async () => {
    await Promise.all([transformers[0]!.kill(), sinks[0]!.kill()]);
    const killedAt = Date.now();
    const ids = await insert(60);
    await Promise.all([transformers[0]!.start(), sinks[0]!.start()]);
    await eventually(async () => expect(await allDelivered(ids)).toBe(true), 60_000, 100);
    const back = Date.now() - killedAt;
    process.stdout.write(`scale-out: kill -9 of the only transformer and sink, restarted at once: every row written meanwhile delivered ${back} ms after the kill\n`);
    expect(back).toBeLessThan(20_000);
  });

  it('an instance stalled past its session (SIGSTOP) is fenced by the one that took its partitions, says so, and rejoins', async () => {
    const second = await run.start('transformer', env());
    await eventually(async () => expect(partitionsOf(second).length).toBeGreaterThan(0), 30_000, 250);
    const stalled = transformers[0]!;
    stalled.freeze();
    const during = await insert(90);
    // Its session ends; the other instance takes its partitions (and their transactional ids: the stalled one is fenced).
    await eventually(async () => expect(partitionsOf(second)).toEqual([0, 1, 2]), 30_000, 250);
    await eventually(async () => expect(await allDelivered(during)).toBe(true), 30_000, 250);
    stalled.thaw();
    // The stalled process saw its own event loop stand still: /healthz says so (an orchestrator would restart it)...
    await eventually(async () => expect(await probe(stalled, 'healthz')).toMatchObject({ status: 503, body: expect.stringContaining('event loop blocked for') }), 10_000, 100);
    // ...and it does not idle as a zombie: it rejoins and holds partitions again, ready.
    await eventually(async () => {
      expect(partitionsOf(stalled).length).toBeGreaterThan(0);
      expect((await probe(stalled, 'readyz')).status).toBe(200);
    }, 60_000, 500);
    const after = await insert(90);
    await eventually(async () => expect(await allDelivered(after)).toBe(true), 30_000, 250);
    // Every row as written, none missing...
    const rows = (await run.pg.query(`SELECT id, district FROM "${run.pgSchema}".citizens ORDER BY id`)).rows as Array<{ id: string; district: string }>;
    expect(rows.map((r) => Number(r.id))).toEqual(written);
    expect(rows.every((r) => r.district === `d${r.id}`)).toBe(true);
    // ...and exactly once in the department's share topic, through two kills and a fenced zombie: aborted transactions are never read.
    const shared = await readAllMessages(run.brokers, new RegExp(`^${run.prefix}\\.share\\.health\\.`));
    expect(shared.length).toBe(written.length);
    transformers = [stalled, second];
  });
});
