import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { isCdcError, keyListsOf, loadPipeline, parsePipeline } from '@cityshare/shared';
import { TARGETS, definitionOf, pipelineTargets, type TargetConfig } from '../src/targets/registry.js';

/** A pipeline file with one department and this target. */
const pipeline = (target: unknown) => ({
  kafka: { brokers: ['127.0.0.1:9092'] },
  schemaRegistry: { url: 'http://127.0.0.1:8081/apis/ccompat/v7' },
  keyring: { file: 'keyring.json' },
  sources: [{ name: 'cityhub', connection: { host: '127.0.0.1', user: 'cdc_reader' }, tables: [{ name: 'civil.citizens', columns: { id: 'public' } }] }],
  departments: [{ name: 'health', target }],
});

function problems(target: unknown): string[] {
  try {
    parsePipeline(stringify(pipeline(target)), {}, pipelineTargets);
    return [];
  } catch (err) {
    if (!isCdcError(err, 'CONFIG_INVALID')) throw err;
    return err.details.problems as string[];
  }
}

/** Settings of every kind, each naming every TLS file it can (files under tls/). */
const withFiles: Record<TargetConfig['kind'], unknown> = {
  postgres: { kind: 'postgres', url: 'postgres://u:pw@h/db', schema: 'dept', ssl: { ca: 'tls/pg-ca.crt', cert: 'tls/pg.crt', key: 'tls/pg.key' } },
  mysql: { kind: 'mysql', url: 'mysql://u:p@h/db', ssl: { ca: 'tls/my-ca.crt' } },
  http: { kind: 'http', url: 'https://x.example/hook', redisUrl: 'rediss://h:6380', redisTls: { ca: 'tls/redis-ca.crt' } },
  rabbitmq: { kind: 'rabbitmq', url: 'amqps://h', exchange: 'x', ca: 'tls/amqp-ca.crt' },
  export: { kind: 'export', staging: { url: 'postgres://h/db', schema: 'stage', ssl: { ca: 'tls/stage-ca.crt' } }, directory: '/srv/x', schedule: { everyMs: 60_000 }, redisUrl: 'rediss://h:6380', redisTls: { ca: 'tls/redis-ca.crt' } },
};

describe('target registry', () => {
  it('lists each kind once, under the literal of its settings', () => {
    expect(TARGETS.map((t) => t.kind).sort()).toEqual(Object.keys(withFiles).sort());
    for (const t of TARGETS) expect(t.config.safeParse(withFiles[t.kind]).success, t.kind).toBe(true);
  });

  it('checks every setting of every kind, and refuses a kind it does not know', () => {
    expect(problems({ kind: 'postgres', url: 'postgres://h/db', schema: 'Not A Name' })).toEqual([expect.stringMatching(/^departments\.0\.target\.schema: lower-case letters/)]);
    expect(problems({ kind: 'postgres', url: 'postgres://h/db', schema: 's', bogus: 1 })).toEqual([expect.stringMatching(/^departments\.0\.target: .*bogus/)]);
    expect(problems({ kind: 'kafka', url: 'x' })).toEqual([expect.stringMatching(/^departments\.0\.target\.kind: /)]);
  });

  it('refuses TLS set twice for PostgreSQL, and CA settings a plain URL cannot use', () => {
    expect(problems({ kind: 'postgres', url: 'postgres://u@h/db?sslmode=require', schema: 's', ssl: { mode: 'verify-full' } })).toEqual([expect.stringMatching(/ssl: the URL sets sslmode as well/)]);
    expect(problems({ kind: 'export', staging: { url: 'postgres://h/db?sslrootcert=x', schema: 's', ssl: { mode: 'require' } }, directory: '/x', schedule: { everyMs: 1000 } })).toEqual([expect.stringMatching(/staging\.ssl: the URL sets sslrootcert as well/)]);
    expect(problems({ kind: 'http', url: 'https://x.example/hook', redisUrl: 'redis://h:6379', redisTls: { ca: 'ca.crt' } })).toEqual([expect.stringMatching(/redisTls needs a rediss:\/\/ redisUrl/)]);
    expect(problems({ kind: 'rabbitmq', url: 'amqp://h', exchange: 'x', ca: 'ca.crt' })).toEqual([expect.stringMatching(/ca needs an amqps:\/\/ url/)]);
    expect(problems({ kind: 'mysql', url: 'mysql://u:p@h/db', ssl: { ca: 'ca.crt', verifyIdentity: false, minVersion: 'TLSv1.3' } })).toEqual([]);
  });

  it.each(Object.keys(withFiles))('resolves the TLS files of a %s target against the pipeline file, and names each one missing', (kind) => {
    const dir = mkdtempSync(join(tmpdir(), 'cityshare-target-files-'));
    mkdirSync(join(dir, 'tls'));
    writeFileSync(join(dir, 'pipeline.yaml'), stringify(pipeline(withFiles[kind as TargetConfig['kind']])));
    const named = [...stringify(withFiles[kind as TargetConfig['kind']]).matchAll(/tls\/[\w-]+\.\w+/g)].map((m) => m[0]);
    let caught: unknown;
    try {
      loadPipeline(join(dir, 'pipeline.yaml'), {}, pipelineTargets);
    } catch (err) {
      caught = err;
    }
    expect(isCdcError(caught, 'CONFIG_INVALID')).toBe(true);
    const missing = (caught as { details: { problems: string[] } }).details.problems;
    expect(missing.map((p) => /(tls\/[\w-]+\.\w+) does not exist/.exec(p)?.[1])).toEqual(named);
    expect(missing.every((p) => p.startsWith('departments.health.target.'))).toBe(true);
    for (const file of named) writeFileSync(join(dir, file), 'pem');
    const { config, targets } = loadPipeline(join(dir, 'pipeline.yaml'), {}, pipelineTargets);
    expect(targets).toBe(pipelineTargets);
    const text = JSON.stringify(config.departments[0]!.target);
    for (const file of named) expect(text).toContain(JSON.stringify(join(dir, file)));
  });

  it('says which targets sign with the department\'s webhook key, which a sink\'s own keyring then holds', () => {
    const signs = (target: unknown) => {
      const config = parsePipeline(stringify(pipeline(target)), {}, pipelineTargets).departments[0]!.target;
      return definitionOf(config).capabilities.signs(config);
    };
    const exportTarget = withFiles.export as Record<string, unknown>;
    expect(signs({ kind: 'http', url: 'https://x.example/hook' })).toBe(true);
    expect(signs({ ...exportTarget, redisUrl: 'redis://h', redisTls: undefined, pushUrl: 'https://stats.example/import' })).toBe(true);
    expect(signs({ ...exportTarget, redisUrl: 'redis://h', redisTls: undefined })).toBe(false);
    expect(signs({ kind: 'postgres', url: 'postgres://h/db', schema: 's' })).toBe(false);
    const names = ['deliveries', 'webhook:health', 'pipeline'];
    expect(keyListsOf('sink', names, 'health', { targetSigns: true })).toEqual(['deliveries', 'webhook:health']);
    expect(keyListsOf('sink', names, 'health', { targetSigns: false })).toEqual(['deliveries']);
  });
});
