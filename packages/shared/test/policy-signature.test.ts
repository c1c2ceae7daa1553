import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CdcError, FileKeyring, POLICY_PUBLIC_KEYS_ENV, loadPipeline, policySigningKey, signPolicy } from '../src/index.js';

const keyring = new FileKeyring({ version: 1, keys: { policy: [{ id: 'policy-1', material: Buffer.alloc(32, 3).toString('base64') }, { id: 'policy-2', material: Buffer.alloc(32, 4).toString('base64') }] } });
const [older, newer] = keyring.keysOf('policy');
const pipeline = `kafka: { brokers: ["127.0.0.1:9092"], topicPrefix: sig }
schemaRegistry: { url: "http://127.0.0.1:8081" }
keyring: { file: keyring.json }
sources:
  - name: cityhub
    connection: { host: 127.0.0.1, port: 3307, user: r, password: r }
    serverId: 9
    tables:
      - name: civil.citizens
        columns: { id: public, name: personal }
departments:
  - name: health
    target: { kind: postgres, url: "postgres://127.0.0.1/x", schema: dept_health }
    grants:
      - table: cityhub.civil.citizens
        columns: { id: pass }
`;

/** Loads `text` as a service does, trusting `trusted` (CITYSHARE_POLICY_PUBLIC_KEYS). */
function load(text: string, trusted?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'policy-sig-'));
  writeFileSync(join(dir, 'pipeline.yaml'), text);
  return loadPipeline(join(dir, 'pipeline.yaml'), { ...(trusted ? { [POLICY_PUBLIC_KEYS_ENV]: trusted } : {}) });
}

function refusal(f: () => unknown): CdcError {
  try {
    f();
  } catch (err) {
    return err as CdcError;
  }
  throw new Error('not refused');
}

describe('signed policy', () => {
  const trusted = `${policySigningKey(older!).publicKey},${policySigningKey(newer!).publicKey}`;

  it('loads a file signed by a trusted key (either, for rotation)', () => {
    expect(load(signPolicy(pipeline, newer!), trusted).config.departments[0]!.grants).toHaveLength(1);
    expect(load(signPolicy(pipeline, older!), trusted).config.kafka.topicPrefix).toBe('sig');
  });

  it('refuses, with its code, a file unsigned, edited after signing, or signed by another key', () => {
    expect(refusal(() => load(pipeline, trusted))).toMatchObject({ code: 'POLICY_SIGNATURE_INVALID', message: expect.stringContaining('is not signed') });
    // An insider who can write the file adds a column to a grant and keeps the signature line.
    const widened = signPolicy(pipeline, newer!).replace('columns: { id: pass }', 'columns: { id: pass, name: pass }');
    expect(refusal(() => load(widened, trusted))).toMatchObject({ code: 'POLICY_SIGNATURE_INVALID', message: expect.stringContaining('was changed after the control plane signed it') });
    const appended = `${signPolicy(pipeline, newer!)}keyring: { file: /tmp/mine.json }\n`;
    expect(refusal(() => load(appended, trusted)).code).toBe('POLICY_SIGNATURE_INVALID');
    const own = { id: 'policy-1', material: Buffer.alloc(32, 7).toString('base64') };
    const byAnother = new FileKeyring({ version: 1, keys: { policy: [own] } }).activeKey('policy');
    expect(refusal(() => load(signPolicy(pipeline, byAnother), trusted))).toMatchObject({ code: 'POLICY_SIGNATURE_INVALID', message: expect.stringContaining('does not verify') });
    expect(refusal(() => load(signPolicy(pipeline, newer!), policySigningKey(older!).publicKey))).toMatchObject({ message: expect.stringContaining('not among the trusted policy keys') });
  });

  it('takes a file as it is when no public key is trusted, and refuses a malformed key list', () => {
    expect(load(pipeline).config.sources).toHaveLength(1);
    expect(refusal(() => load(pipeline, 'policy-1:abc'))).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('cdc policy public-key') });
  });

  it('signs deterministically, so an unchanged policy is an unchanged file', () => {
    expect(signPolicy(pipeline, newer!)).toBe(signPolicy(pipeline, newer!));
  });
});
