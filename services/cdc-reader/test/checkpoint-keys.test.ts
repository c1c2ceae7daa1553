import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileKeyring } from '@cityshare/shared';
import { openLastKeys, sealLastKeys } from '../src/checkpoint-store.js';

describe('snapshot keys in checkpoints', () => {
  const keys = FileKeyring.ensure(join(mkdtempSync(join(tmpdir(), 'ckpt-')), 'keyring.json'), ['pipeline', 'department:health']);
  const snapshot = { 'civil.people': { lastKey: ['110101199001011234'], done: false, rows: 4096 }, 'civil.empty': { lastKey: null, done: true, rows: 0 } };
  const at = { file: 'mariadb-bin.000001', pos: 4, savedAt: '2026-12-03T00:00:00Z' };

  it('stores a last key sealed under the pipeline key, and opens it back', () => {
    const stored = sealLastKeys(keys, 'cityhub', snapshot);
    expect(JSON.stringify(stored)).not.toContain('110101199001011234');
    expect(stored['civil.people']!.lastKey).toMatch(/^enc:v1:/);
    expect(stored['civil.empty']!.lastKey).toBeNull();
    expect(openLastKeys(keys, 'cityhub', { ...at, snapshot: stored as never }).snapshot).toEqual(snapshot);
  });

  it('binds it to its source and table, and still reads a checkpoint written before keys were sealed', () => {
    const stored = sealLastKeys(keys, 'cityhub', snapshot);
    const moved = { 'civil.other': stored['civil.people']! };
    expect(() => openLastKeys(keys, 'cityhub', { ...at, snapshot: moved as never })).toThrow(/DECRYPT_FAILED|could not be decrypted|does not/);
    expect(() => openLastKeys(keys, 'elsewhere', { ...at, snapshot: stored as never })).toThrow();
    expect(openLastKeys(keys, 'cityhub', { ...at, snapshot }).snapshot).toEqual(snapshot);
  });
});
