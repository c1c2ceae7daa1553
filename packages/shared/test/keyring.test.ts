import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FileKeyring, keyListsOf } from '../src/index.js';

const key = (id: string) => [{ id, material: Buffer.alloc(32, id.length).toString('base64') }];
const full = new FileKeyring({
  version: 1,
  keys: {
    pipeline: key('p'), deliveries: key('d'), audit: key('a'), policy: key('po'),
    'department:health': key('h'), 'department:haidian': key('hd'), 'token:citizen': key('t'), 'token:own:health': key('toh'),
    'webhook:health': key('wh'), 'webhook:haidian': key('whd'),
  },
});

describe("each service's own keyring", () => {
  it('holds only the lists its work needs', () => {
    const names = full.listNames();
    expect(keyListsOf('cdc-reader', names)).toEqual(['pipeline']);
    expect(keyListsOf('transformer', names).sort()).toEqual(['department:haidian', 'department:health', 'pipeline', 'token:citizen', 'token:own:health']);
    // A sink (on a department's side of the network) holds no pipeline key, no KEK, no token key, no audit or policy key.
    expect(keyListsOf('sink', names, 'health')).toEqual(['deliveries', 'webhook:health']);
    expect(keyListsOf('department', names, 'health')).toEqual(['department:health']);
  });

  it('is written as a subset that loads, and warns when a service holds more', () => {
    const sink = new FileKeyring(full.subset(keyListsOf('sink', full.listNames(), 'health')));
    expect(sink.listNames()).toEqual(['deliveries', 'webhook:health']);
    expect(() => sink.activeKey('pipeline')).toThrow(/no key named pipeline/);
    const warnings: Array<{ extra: string[] }> = [];
    const dir = `${process.env.TMPDIR ?? '/tmp'}/keyring-test-${process.pid}.json`;
    writeFileSync(dir, JSON.stringify(full.subset(full.listNames())));
    FileKeyring.loadFor(dir, 'sink', { warn: (o) => void warnings.push(o as { extra: string[] }) }, 'health');
    expect(warnings[0]!.extra).toEqual(expect.arrayContaining(['pipeline', 'audit', 'policy', 'department:health', 'token:citizen']));
  });
});
