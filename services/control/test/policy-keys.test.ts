import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { FileKeyring, createLogger, policyKeyNames } from '@cityshare/shared';
import { catalogFromPipelineText } from '../src/catalog.js';
import type { GrantRequest } from '../src/grants.js';
import type { AuditLedger } from '../src/ledger.js';
import { PolicyPublisher } from '../src/policy-publisher.js';

describe('keys a policy needs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'policy-keys-'));
  const doc = catalogFromPipelineText(stringify({
    kafka: { brokers: ['127.0.0.1:9092'], topicPrefix: 't' },
    schemaRegistry: { url: 'http://127.0.0.1:8081/apis/ccompat/v7' },
    keyring: { file: 'keyring.json' },
    sources: [{ name: 'cityhub', connection: { host: '127.0.0.1', port: 3307, user: 'cdc_reader', password: 'x' }, serverId: 7, tables: [{ name: 'civil.citizens', columns: { id: 'public', phone: 'personal', id_card: 'secret' } }] }],
    departments: [{ name: 'health', target: { kind: 'postgres', url: 'postgres://h/db', schema: 'dept_health' } }],
  }));
  const grant = (columns: Record<string, unknown>): GrantRequest => ({ id: 1, department: 'health', table: 'cityhub.civil.citizens', spec: { columns }, purpose: 'p', expiresAt: null, status: 'approved', requestedBy: 'a', decidedBy: 'b', reason: 'r' });
  const publisher = new PolicyPublisher(join(dir, 'pipeline.yaml'), {} as AuditLedger, createLogger('test', 'silent'));

  it('names the KEK of each department with a grant and the token key of each domain, own domains included', () => {
    const config = { departments: [{ name: 'health', grants: [{ columns: { id: 'pass', phone: 'tokenize', id_card: { tokenize: { domain: 'citizen' } } } }] }, { name: 'idle', grants: [] }] };
    expect(policyKeyNames(config as never).sort()).toEqual(['department:health', 'token:citizen', 'token:own:health']);
  });

  it('refuses to render (so to approve or publish) a grant whose key the keyring lacks, which the transformer would refuse', () => {
    FileKeyring.ensure(join(dir, 'keyring.json'), ['pipeline', 'department:health']);
    expect(() => publisher.render(doc, [grant({ id: 'pass', phone: 'tokenize' })])).toThrow(/KEY_NOT_FOUND|token:own:health/);
    expect(() => publisher.render(doc, [grant({ id: 'pass', phone: { mask: 'phone' } })])).not.toThrow();
    FileKeyring.ensure(join(dir, 'keyring.json'), ['token:own:health']);
    expect(() => publisher.render(doc, [grant({ id: 'pass', phone: 'tokenize' })])).not.toThrow();
  });
});
