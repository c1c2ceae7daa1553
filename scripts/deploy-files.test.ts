import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { readerEnv } from '../services/cdc-reader/src/config.js';
import { controlEnv } from '../services/control/src/config.js';
import { sinkEnv } from '../services/sink/src/config.js';
import { transformerEnv } from '../services/transformer/src/config.js';
import { verifierEnv } from '../services/verifier/src/config.js';
import { OWN_NODE_FLAGS, SERVICES, SERVICE_NODE_FLAGS, serviceBundle } from './build-services.js';

/** The systemd unit and the example environments in deploy/systemd against what the services really read. */
const root = fileURLToPath(new URL('..', import.meta.url));
const dir = join(root, 'deploy', 'systemd');
const declared: Record<string, Set<string>> = Object.fromEntries(
  ([['cdc-reader', readerEnv], ['transformer', transformerEnv], ['sink', sinkEnv], ['control', controlEnv], ['verifier', verifierEnv]] as const).map(([name, schema]) => [name, new Set(Object.keys((schema as z.ZodObject).shape))]),
);
// Variables a pipeline file refers to (`${NAME}` / `${NAME:-default}`), as the demo's does.
const referenced = new Set([...readFileSync(join(root, 'deploy', 'local', 'pipeline.yaml'), 'utf8').matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1]!));

describe('deploy/systemd', () => {
  it('the unit starts a service bundle as the build writes it, with the services\' node flags', () => {
    const unit = readFileSync(join(dir, 'cityshare@.service'), 'utf8');
    const exec = /^ExecStart=(.+)$/m.exec(unit)![1]!;
    expect(exec).toBe(`/usr/bin/node ${SERVICE_NODE_FLAGS.join(' ')} $CITYSHARE_NODE_FLAGS /opt/cityshare/services/\${CITYSHARE_SERVICE}/dist/main.mjs`);
    expect(serviceBundle('sink').endsWith(join('services', 'sink', 'dist', 'main.mjs'))).toBe(true);
  });

  it('gives the transformer, whose memory grows with its departments, a larger limit than the unit\'s', () => {
    const limitMiB = (file: string) => {
      const m = /^MemoryMax=(\d+)M$/m.exec(readFileSync(join(dir, file), 'utf8'));
      expect(m, file).not.toBeNull();
      return Number(m![1]);
    };
    const unit = limitMiB('cityshare@.service');
    const transformer = limitMiB(join('cityshare@transformer.service.d', 'memory.conf'));
    // Ten departments peaked at 400-450 MiB in the transformer bench (BENCHMARKS.md).
    expect(unit).toBeLessThan(450);
    expect(transformer).toBeGreaterThanOrEqual(450 * 1.5);
    // The drop-in is a [Service] section, as systemd reads it.
    expect(readFileSync(join(dir, 'cityshare@transformer.service.d', 'memory.conf'), 'utf8')).toMatch(/^\[Service\]$/m);
  });

  it('every example environment names a service and only variables that service or its pipeline file reads', () => {
    const examples = readdirSync(dir).filter((f) => f.endsWith('.env.example'));
    expect(examples.length).toBe(SERVICES.length);
    for (const file of examples) {
      const vars = readFileSync(join(dir, file), 'utf8').split('\n').filter((l) => /^[A-Z]/.test(l)).map((l) => l.slice(0, l.indexOf('=')));
      const service = readFileSync(join(dir, file), 'utf8').match(/^CITYSHARE_SERVICE=(.+)$/m)?.[1];
      expect(SERVICES as readonly string[], file).toContain(service);
      const unknown = vars.filter((v) => v !== 'CITYSHARE_SERVICE' && v !== 'CITYSHARE_NODE_FLAGS' && !declared[service!]!.has(v) && !referenced.has(v));
      expect(unknown, file).toEqual([]);
      // The service's own node flags, as the build's launchers pass them.
      const nodeFlags = readFileSync(join(dir, file), 'utf8').match(/^CITYSHARE_NODE_FLAGS=(.*)$/m)?.[1];
      expect(nodeFlags, file).toBe(OWN_NODE_FLAGS[service as (typeof SERVICES)[number]]?.join(' '));
    }
  });
});
