import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadPipeline, parsePipeline } from '../src/config/load-pipeline.js';
import { isCdcError } from '../src/errors.js';
import { redactUrl, withoutSecrets } from '../src/redact.js';
import { mysqlSslOptions, postgresSslOptions, redisTlsOptions, sourceConnectionOptions } from '../src/tls.js';

const pipeline = (over: { ssl?: unknown; target?: unknown; registry?: Record<string, unknown> } = {}) => ({
  kafka: { brokers: ['127.0.0.1:9092'] },
  schemaRegistry: { url: 'http://127.0.0.1:8081/apis/ccompat/v7', ...over.registry },
  keyring: { file: 'keyring.json' },
  sources: [{
    name: 'cityhub',
    connection: { host: '127.0.0.1', port: 3307, user: 'cdc_reader', password: 'pw', ...(over.ssl ? { ssl: over.ssl } : {}) },
    serverId: 7,
    tables: [{ name: 'civil.citizens', columns: { id: 'public' } }],
  }],
  departments: over.target ? [{ name: 'health', target: over.target }] : [],
});

function problems(doc: unknown): string[] {
  try {
    parsePipeline(stringify(doc), {});
    return [];
  } catch (err) {
    if (!isCdcError(err, 'CONFIG_INVALID')) throw err;
    return err.details.problems as string[];
  }
}

/** A pipeline file in a directory of its own, with a tls/ folder next to it. */
function pipelineDir(doc: unknown, files: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'cityshare-tls-config-'));
  mkdirSync(join(dir, 'tls'));
  for (const f of files) writeFileSync(join(dir, f), `-----BEGIN CERTIFICATE-----\n${f}\n-----END CERTIFICATE-----\n`);
  writeFileSync(join(dir, 'pipeline.yaml'), stringify(doc));
  return join(dir, 'pipeline.yaml');
}

describe('TLS settings of the pipeline file', () => {
  it('resolves TLS files relative to the pipeline file, like keyring.file, and builds mysql2 options from them', () => {
    const path = pipelineDir(pipeline({ ssl: { ca: 'tls/ca.crt' }, registry: { url: 'https://registry:8081', ca: 'tls/ca.crt' } }), ['tls/ca.crt']);
    const { config, keyringPath } = loadPipeline(path);
    const dir = join(path, '..');
    expect(keyringPath).toBe(join(dir, 'keyring.json'));
    expect(config.sources[0]!.connection.ssl).toEqual({ ca: join(dir, 'tls/ca.crt'), verifyIdentity: true });
    expect(config.schemaRegistry.ca).toBe(join(dir, 'tls/ca.crt'));
    const options = sourceConnectionOptions(config.sources[0]!);
    expect(options).toMatchObject({ host: '127.0.0.1', port: 3307, user: 'cdc_reader', ssl: { rejectUnauthorized: true, verifyIdentity: true } });
    expect(String((options.ssl as { ca: Buffer }).ca)).toContain('tls/ca.crt');
  });

  it('lists every TLS file that cannot be read, naming the setting', () => {
    const path = pipelineDir(pipeline({ ssl: { ca: 'tls/missing.crt', cert: 'tls/client.crt', key: 'tls/client.key' }, registry: { url: 'https://registry:8081', ca: 'tls/registry.crt' } }), ['tls/client.crt', 'tls/client.key']);
    let caught: unknown;
    try {
      loadPipeline(path);
    } catch (err) {
      caught = err;
    }
    expect(isCdcError(caught, 'CONFIG_INVALID')).toBe(true);
    expect((caught as { details: { problems: string[] } }).details.problems).toEqual([
      expect.stringMatching(/^schemaRegistry\.ca: .*tls\/registry\.crt does not exist/),
      expect.stringMatching(/^sources\.cityhub\.connection\.ssl\.ca: .*tls\/missing\.crt does not exist/),
    ]);
  });

  it('refuses half a client certificate, and a CA a plain URL cannot use (targets: services/sink/test/target-registry.test.ts)', () => {
    expect(problems(pipeline({ ssl: { ca: 'ca.crt', cert: 'c.crt' } }))).toEqual([expect.stringMatching(/cert and key go together/)]);
    expect(problems(pipeline({ registry: { ca: 'ca.crt' } }))).toEqual([expect.stringMatching(/ca needs an https:\/\/ url/)]);
  });

  it('without the sink\'s target registry, requires a target to name its kind and leaves its settings alone', () => {
    expect(problems(pipeline({ target: { kind: 'postgres', schema: 'Not A Name', ssl: { ca: 'tls/nowhere.crt' }, anything: 1 } }))).toEqual([]);
    expect(problems(pipeline({ target: { url: 'postgres://h/db' } }))).toEqual([expect.stringMatching(/^departments\.0\.target\.kind: /)]);
  });

  it('maps PostgreSQL modes to pg options, MySQL identity checks and Redis CAs', () => {
    const path = pipelineDir(pipeline(), ['tls/ca.crt']);
    const ca = join(path, '..', 'tls/ca.crt');
    expect(postgresSslOptions({ mode: 'verify-full', ca }, 't')).toMatchObject({ rejectUnauthorized: true, ca: expect.any(Buffer) });
    expect(postgresSslOptions({ mode: 'verify-full', ca }, 't')).not.toHaveProperty('checkServerIdentity');
    const verifyCa = postgresSslOptions({ mode: 'verify-ca', ca }, 't')!;
    expect(verifyCa.rejectUnauthorized).toBe(true);
    expect(verifyCa.checkServerIdentity!('other.host', {} as never)).toBeUndefined();
    expect(postgresSslOptions({ mode: 'require' }, 't')).toEqual({ rejectUnauthorized: false });
    expect(postgresSslOptions(undefined, 't')).toBeUndefined();
    expect(mysqlSslOptions({ ca, verifyIdentity: false }, 't')).toMatchObject({ rejectUnauthorized: true, verifyIdentity: false });
    expect(redisTlsOptions({ ca }, 't')).toEqual({ tls: { ca: expect.any(Buffer) } });
    expect(redisTlsOptions(undefined, 't')).toEqual({});
  });
});

describe('credentials out of messages', () => {
  it('redacts the password of a URL, keeping where it points', () => {
    expect(redactUrl('postgres://dept:s3cr%40t@db.example:5432/health?application_name=x')).toBe('postgres://dept:***@db.example:5432/health?application_name=x');
    expect(redactUrl('rediss://:hunter2@127.0.0.1:6380/0')).toBe('rediss://:***@127.0.0.1:6380/0');
    expect(redactUrl('amqp://guest@127.0.0.1')).toBe('amqp://guest@127.0.0.1');
    expect(redactUrl('not a url //user:pw@host')).toBe('not a url //***@host');
  });

  it('removes URLs, their passwords (as written and decoded) and plain secrets from text', () => {
    const url = 'postgres://dept:s3cr%40t@db.example:5432/health';
    const text = `connect ${url} failed: password "s3cr@t" rejected; also s3cr%40t and token abc123`;
    const clean = withoutSecrets(text, { urls: [url], secrets: ['abc123', undefined, ''] });
    expect(clean).not.toMatch(/s3cr@t|s3cr%40t|abc123/);
    expect(clean).toContain('postgres://dept:***@db.example:5432/health');
  });
});
