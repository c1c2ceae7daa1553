import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * No unhandled 'error' events: a driver client (pg, mysql2, amqplib, ioredis, BullMQ) emits
 * 'error' when its connection fails outside a call, and an 'error' event nobody listens to
 * ends the process. Every client a source file of services/ or packages/ constructs is
 * assigned to a name with `<name>.on('error', …)` (or `hearPoolErrors(<name>, …)`) in the
 * same file, or carries a comment `error events: <why none is needed>` on its line or the
 * line above. kafkajs clients are not event emitters of 'error' (their faults are CRASH
 * events and rejected calls) and are not checked.
 */

/** Constructions of each library, looked for only in files importing it. */
const CONSTRUCTIONS: Record<string, RegExp> = {
  pg: /new\s+(?:pg\.)?(?:Pool|Client)\s*\(/g,
  mysql2: /\b(?:createPool|createConnection)\s*\(/g,
  amqplib: /(?<![.\w])connect\s*\(|\.create(?:Confirm)?Channel\s*\(/g,
  ioredis: /new\s+(?:IO)?Redis\s*\(/g,
  bullmq: /new\s+(?:Queue|Worker|QueueEvents|FlowProducer)\s*\(/g,
};

export interface Unheard {
  line: number;
  text: string;
}

/** The client constructions of a source file that nothing listens to for 'error'. */
export function unheardClients(source: string): Unheard[] {
  const imported = (lib: string) => new RegExp(`from\\s+['"]${lib}(?:/[\\w/]+)?['"]`).test(source);
  const lines = source.split('\n');
  const found: Unheard[] = [];
  for (const [lib, pattern] of Object.entries(CONSTRUCTIONS)) {
    if (!imported(lib)) continue;
    lines.forEach((text, i) => {
      // Comments, imports and method definitions (`async connect(): …{`) construct nothing.
      if (/^\s*(?:\/\/|\*|\/\*)/.test(text) || /^\s*import\b/.test(text) || /^\s*(?:async\s+)?\w+\s*\([^)]*\)\s*(?::\s*[^{=]+)?\{\s*$/.test(text)) return;
      for (const match of text.matchAll(pattern)) {
        if (/error events:/.test(text) || /error events:/.test(lines[i - 1] ?? '')) continue;
        const name = /([\w.]+)\s*=\s*(?:await\s+)?[\w.]*$/.exec(text.slice(0, match.index))?.[1];
        const heard = name !== undefined && new RegExp(`(?:${escape(name)}\\.on\\(\\s*['"]error['"]|hearPoolErrors\\(\\s*${escape(name)}\\b)`).test(source);
        if (!heard) found.push({ line: i + 1, text: text.trim() });
      }
    });
  }
  return found;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'node_modules' || e.name === 'dist' || e.name === 'test' ? [] : sourceFiles(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

const root = fileURLToPath(new URL('..', import.meta.url));

describe('driver clients have error listeners', () => {
  it('every pg, mysql2, amqplib, ioredis and BullMQ client in services/ and packages/ is heard', () => {
    const problems = ['services', 'packages'].flatMap((top) => sourceFiles(join(root, top))).flatMap((file) =>
      unheardClients(readFileSync(file, 'utf8')).map((u) => `${relative(root, file)}:${u.line}: ${u.text}`),
    );
    expect(problems).toEqual([]);
  });

  it('finds a client without a listener, and accepts one with a listener or a reason', () => {
    const pg = "import pg from 'pg';\n";
    expect(unheardClients(`${pg}const pool = new pg.Pool({});\n`)).toEqual([{ line: 2, text: 'const pool = new pg.Pool({});' }]);
    expect(unheardClients(`${pg}this.pool = new pg.Pool({});\nthis.pool.on('error', log);\n`)).toEqual([]);
    expect(unheardClients(`${pg}this.pool = new pg.Pool({});\nhearPoolErrors(this.pool, faults);\n`)).toEqual([]);
    expect(unheardClients(`import { connect } from 'amqplib';\nconst c = await connect(url);\nconst ch = await c.createConfirmChannel();\nc.on('error', log);\n`)).toEqual([{ line: 3, text: 'const ch = await c.createConfirmChannel();' }]);
    expect(unheardClients(`import { Queue } from 'bullmq';\nreturn new Queue('q');\n`)).toHaveLength(1);
    expect(unheardClients(`import { Queue } from 'bullmq';\n// error events: calls reject on their own\nreturn new Queue('q');\n`)).toEqual([]);
    expect(unheardClients(`import { createPool } from 'mysql2/promise';\nconst p = createPool({});\n`)).toHaveLength(1);
    // Not a client of a library the file imports.
    expect(unheardClients(`const server = new Worker('x');\n`)).toEqual([]);
  });
});
