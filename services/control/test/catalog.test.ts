import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { isCdcError } from '@cityshare/shared';
import { catalogFromPipelineText, describeChange, diffCatalog, EMPTY_CATALOG, pipelineText } from '../src/catalog.js';

const file = (over: { columns?: Record<string, string>; departments?: unknown[]; port?: unknown } = {}) =>
  stringify({
    kafka: { brokers: ['127.0.0.1:9092'], topicPrefix: 't' },
    schemaRegistry: { url: 'http://127.0.0.1:8081/apis/ccompat/v7' },
    keyring: { file: 'keyring.json' },
    sources: [{
      name: 'cityhub',
      connection: { host: '127.0.0.1', port: over.port ?? 3307, user: 'cdc_reader', password: '${SOURCE_PASSWORD:-cdc_reader}' },
      serverId: 7,
      tables: [{ name: 'civil.citizens', columns: over.columns ?? { id: 'public', name: 'personal', phone: 'personal' } }],
    }],
    departments: over.departments ?? [{ name: 'health', target: { kind: 'postgres', url: 'postgres://u:secret@h/db', schema: 'dept_health' } }],
  });

const problems = (f: () => unknown): string[] => {
  try {
    f();
  } catch (err) {
    if (isCdcError(err, 'CONFIG_INVALID')) return err.details?.problems as string[];
    throw err;
  }
  return [];
};

describe('catalog documents', () => {
  it('keeps a file as written, environment references included, without grants', () => {
    const doc = catalogFromPipelineText(file());
    expect(doc.sources[0]).toMatchObject({ name: 'cityhub', connection: { password: '${SOURCE_PASSWORD:-cdc_reader}' }, tables: [{ name: 'civil.citizens' }] });
    expect(doc.departments).toEqual([{ name: 'health', target: { kind: 'postgres', url: 'postgres://u:secret@h/db', schema: 'dept_health' } }]);
    expect(Object.keys(doc.settings)).toEqual(['kafka', 'schemaRegistry', 'keyring']);
  });

  it('refuses a file as a whole, listing every problem, grants included', () => {
    const listed = problems(() => catalogFromPipelineText(file({
      port: 'not-a-port',
      columns: { id: 'public', name: 'confidential' },
      departments: [{ name: 'health', target: { kind: 'postgres', url: 'postgres://h/db' }, grants: [{ table: 'cityhub.civil.citizens', columns: { id: 'pass' } }] }],
    })));
    expect(listed).toEqual(expect.arrayContaining([
      expect.stringMatching(/^sources\.0\.connection\.port:/),
      expect.stringMatching(/^sources\.0\.tables\.0\.columns\.name:/),
      expect.stringMatching(/^departments\.health\.grants: grants are requested and approved through the control plane/),
    ]));
    expect(listed.length).toBeGreaterThanOrEqual(3);
  });

  it('renders the pipeline file with the grants of each department', () => {
    const text = pipelineText(catalogFromPipelineText(file()), (d) => (d === 'health' ? [{ table: 'cityhub.civil.citizens', columns: { id: 'pass' } }] : []));
    expect(text).toContain('${SOURCE_PASSWORD:-cdc_reader}');
    expect(catalogFromPipelineText.bind(null, text)).toThrow(/grants are requested/);
  });
});

describe('catalog diff', () => {
  it('names every added, removed and changed entity, column classes with their values, other fields by name only', () => {
    const before = catalogFromPipelineText(file());
    const after = catalogFromPipelineText(file({
      port: 3308,
      columns: { id: 'public', name: 'secret', address: 'personal' },
      departments: [{ name: 'health', target: { kind: 'postgres', url: 'postgres://u:other@h/db', schema: 'dept_health' } }, { name: 'haidian', target: { kind: 'postgres', url: 'postgres://h/db', schema: 'dept_haidian' } }],
    }));
    const changes = diffCatalog(before, after);
    expect(changes.map(describeChange)).toEqual([
      '~ source cityhub: connection',
      '+ column cityhub.civil.citizens.address (personal)',
      '~ column cityhub.civil.citizens.name personal -> secret',
      '- column cityhub.civil.citizens.phone (personal)',
      '+ department haidian',
      '~ department health: target',
    ]);
    // A changed target is named, its URL (with a password) never shown.
    expect(JSON.stringify(changes)).not.toContain('other');
  });

  it('finds nothing to change in the same file, and everything in a first import', () => {
    const doc = catalogFromPipelineText(file());
    expect(diffCatalog(doc, catalogFromPipelineText(file()))).toEqual([]);
    expect(diffCatalog(EMPTY_CATALOG, doc).map(describeChange)).toEqual([
      '+ setting kafka', '+ setting keyring', '+ setting schemaRegistry',
      '+ source cityhub', '+ table cityhub.civil.citizens',
      '+ column cityhub.civil.citizens.id (public)', '+ column cityhub.civil.citizens.name (personal)', '+ column cityhub.civil.citizens.phone (personal)',
      '+ department health',
    ]);
  });
});
