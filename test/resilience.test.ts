import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';
import { TcpProxy } from './support/tcp-proxy.js';

/**
 * Outages ridden out without an operator: a service cut off from a dependency keeps
 * running, says so on /readyz and in `cityshare_dependency_up`, and resumes by itself.
 */
describe('resilience: outages of the source and the registry', () => {
  const run = new PipelineRun();
  const registry = new URL(stack.registryUrl);
  const registryProxy = new TcpProxy({ host: registry.hostname, port: Number(registry.port) });
  const sourceProxy = new TcpProxy(stack.source);
  let pipelineFile = '';
  const env = () => ({ CITYSHARE_PIPELINE: pipelineFile });
  const readyz = async (svc: ServiceProcess) => {
    const res = await fetch(`http://127.0.0.1:${svc.port}/readyz`);
    return { status: res.status, body: await res.text() };
  };
  const dependencyUp = async (svc: ServiceProcess, dependency: string) =>
    new RegExp(`^cityshare_dependency_up\\{[^}]*dependency="${dependency}"[^}]*\\} (\\d)`, 'm').exec(await svc.metrics())?.[1];
  const insert = (id: number) =>
    run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES (?, '王小明', '110101199001010000', '13800000000', '海淀', NOW(6))`, [id]);
  const delivered = async () => ((await run.pg.query(`SELECT id FROM "${run.pgSchema}".citizens ORDER BY id`).catch(() => ({ rows: [] }))).rows as Array<{ id: string }>).map((r) => Number(r.id));

  beforeAll(async () => {
    await run.setUp();
    await sourceProxy.restore();
    // The registry is down (its port closed) when the services start.
    await registryProxy.restore();
    await registryProxy.cut();
    const registryUrl = `${registry.protocol}//127.0.0.1:${registryProxy.port}${registry.pathname}`;
    pipelineFile = run.writePipelineFile('resilience.yaml', {
      serverId: 6301,
      sourcePort: sourceProxy.port,
      registryUrl,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{ name: 'health', target: { kind: 'postgres', url: stack.postgresUrl, schema: run.pgSchema }, grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', district: 'pass' } }] }],
    });
  });

  afterAll(async () => {
    await run.tearDown();
    await sourceProxy.cut();
    await registryProxy.cut();
  });

  it('starts a transformer while the registry is down: it waits, says why, and starts once the registry is back', async () => {
    await run.start('cdc-reader', env());
    await insert(1);
    const transformer = run.service('transformer', env());
    await transformer.start({ until: 'alive' });
    // The first change needs its contract registered: the transformer cannot, and waits.
    await eventually(async () => expect(await readyz(transformer)).toMatchObject({ status: 503, body: expect.stringContaining('REGISTRY_UNREACHABLE') }), 90_000, 250);
    expect(await dependencyUp(transformer, 'registry')).toBe('0');
    await new Promise((r) => setTimeout(r, 3000));
    expect(transformer.running).toBe(true);
    await registryProxy.restore();
    await run.start('sink', env());
    await eventually(async () => expect(await delivered()).toEqual([1]), 120_000, 500);
    expect((await readyz(transformer)).status).toBe(200);
    expect(await dependencyUp(transformer, 'registry')).toBe('1');
  });

  it('rides out a lost connection to the source: the reader waits, says why, and resumes where it was', async () => {
    const reader = run.services.find((s) => s.name === 'cdc-reader')!;
    await sourceProxy.cut();
    for (let id = 2; id <= 11; id++) await insert(id);
    await eventually(async () => expect(await readyz(reader)).toMatchObject({ status: 503, body: expect.stringContaining('SOURCE_UNREACHABLE') }), 30_000, 250);
    expect(await dependencyUp(reader, 'source')).toBe('0');
    expect(reader.running).toBe(true);
    await sourceProxy.restore();
    await eventually(async () => expect(await delivered()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), 90_000, 1000);
    expect((await readyz(reader)).status).toBe(200);
  });
});
