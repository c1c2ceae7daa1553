/**
 * Builds each service into one ES module, `services/<name>/dist/main.mjs`, with esbuild:
 * TypeScript compiled, the workspace packages and pure-JS dependencies bundled in. A
 * service then runs on plain `node`, without compiling TypeScript at start-up or keeping a
 * compiler in memory (about 35 MiB of resident memory per process under tsx).
 *   npm run build            builds what is out of date
 *   npm run build -- --force builds everything
 * Launchers (tests, benchmarks, demo) call `ensureServicesBuilt()`, which rebuilds only
 * when a source file is newer than the bundle; bundles are written to a temporary file and
 * renamed, so a process starting meanwhile never loads half a file. The control service's
 * web console (services/control/console, Vite) is built the same way, into
 * services/control/dist/console, which the control service serves at /console/.
 */
import { existsSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { build as viteBuild } from 'vite';

export const SERVICES = ['cdc-reader', 'transformer', 'sink', 'control', 'verifier'] as const;

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Left to node_modules at run time: the native CRC32C addon, and bullmq, which reads its Lua
 * scripts from its own folder. (Optional requires inside try/catch, such as pg's pg-native,
 * stay run-time requires in the bundle.)
 */
const EXTERNAL = ['@node-rs/crc32', 'bullmq'];

/** Where a service's bundle is. */
export function serviceBundle(name: string): string {
  return join(root, 'services', name, 'dist', 'main.mjs');
}

/**
 * Node.js flags every service runs with (also in each service's `npm start`). A young
 * generation of 4 MiB semi-spaces instead of 16: the services allocate mostly short-lived
 * event strings and buffers, so scavenges stay cheap, and resident memory drops by 30-45
 * MiB. Alternating runs of `npm run bench:reader` (1 M rows, 300,000-row burst), 16 -> 4:
 * binlog 20.9k/23.1k -> 23.6k/21.8k rows/s with peak RSS 218/221 -> 191/186 MiB; snapshot
 * 34.6k/34.7k -> 31.7k/31.7k rows/s (-9 %) with 274/268 -> 232/226 MiB. 8 MiB kept the
 * snapshot rate but not its RSS under 256 MiB (261/248).
 */
export const SERVICE_NODE_FLAGS = ['--max-semi-space-size=4'];

/**
 * Node.js flags of one service beyond every service's (in its `npm start`, and in
 * CITYSHARE_NODE_FLAGS of its example environment for the systemd unit). The sink: an old
 * generation of at most 256 MiB. Its batches live through several young-generation
 * collections while they wait for the target, so they are promoted; under V8's default limit
 * (a quarter of the machine's memory) the old generation then held up to about 100 MiB of
 * garbage between collections. Passes of `npm run bench:sink` (200,000 rows) in the same
 * hour, default -> 256 MiB: peak RSS 249-280 -> 155-161 MiB, rates within the machine's noise
 * (24.9-35.0k and 23.6-30.4k rows/s), though its profile spends 26 % in garbage collection
 * against 18 %; 128 and 192 MiB held no lower, 64 MiB was slower.
 */
export const OWN_NODE_FLAGS: Partial<Record<(typeof SERVICES)[number], string[]>> = { sink: ['--max-old-space-size=256'] };

/** Every flag a service runs with. */
export function serviceNodeFlags(name: (typeof SERVICES)[number]): string[] {
  return [...SERVICE_NODE_FLAGS, ...(OWN_NODE_FLAGS[name] ?? [])];
}

/** The arguments of `node` that run a service from its bundle. */
export function serviceArgs(name: (typeof SERVICES)[number]): string[] {
  return [...serviceNodeFlags(name), serviceBundle(name)];
}

/** Newest modification time of the files under these folders (recursively). */
function newest(paths: string[]): number {
  let max = 0;
  const visit = (p: string): void => {
    const s = statSync(p);
    if (s.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
    else max = Math.max(max, s.mtimeMs);
  };
  for (const p of paths) if (existsSync(p)) visit(p);
  return max;
}

/** Sources every bundle depends on besides its own service's. */
function sharedSources(): string[] {
  return [...readdirSync(join(root, 'packages')).map((p) => join(root, 'packages', p, 'src')), join(root, 'package-lock.json'), join(root, 'patches'), join(root, 'scripts', 'build-services.ts')];
}

/** The service's own sources and those of the services it imports (the control plane checks targets with the sink's registry). */
function serviceSources(name: string, seen = new Set<string>()): string[] {
  if (seen.has(name)) return [];
  seen.add(name);
  const { dependencies = {} } = JSON.parse(readFileSync(join(root, 'services', name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  const services = Object.keys(dependencies).map((d) => /^@cityshare\/(.+)$/.exec(d)?.[1]).filter((d): d is string => d !== undefined && existsSync(join(root, 'services', d)));
  return [join(root, 'services', name, 'src'), ...services.flatMap((d) => serviceSources(d, seen))];
}

function outOfDate(name: string): boolean {
  const bundle = serviceBundle(name);
  if (!existsSync(bundle)) return true;
  return newest([...serviceSources(name), ...sharedSources()]) > statSync(bundle).mtimeMs;
}

/** CommonJS dependencies bundled into an ES module still call `require` for Node's built-ins. */
const BANNER = "import { createRequire as __cityshareRequire } from 'node:module'; const require = __cityshareRequire(import.meta.url);";

export async function buildService(name: string): Promise<void> {
  const out = serviceBundle(name);
  const tmp = `${out}.${process.pid}.tmp`;
  const external: Plugin = {
    name: 'external',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => (EXTERNAL.some((e) => args.path === e || args.path.startsWith(`${e}/`)) ? { path: args.path, external: true } : undefined));
    },
  };
  await build({
    entryPoints: [join(root, 'services', name, 'src', 'main.ts')],
    outfile: tmp,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    banner: { js: BANNER },
    plugins: [external],
    logLevel: 'warning',
    legalComments: 'none',
  });
  renameSync(tmp, out);
}

/** The web console's sources and where its production build goes. */
const CONSOLE = { sources: join(root, 'services', 'control', 'console'), index: join(root, 'services', 'control', 'dist', 'console', 'index.html') };

/** Builds the web console (Vite: every script and style a hashed file of its own, nothing inline, nothing from elsewhere). */
export async function buildConsole(): Promise<void> {
  await viteBuild({ configFile: join(CONSOLE.sources, 'vite.config.ts') });
}

let built: Promise<string[]> | undefined;

/** Builds the services whose bundle is missing or older than their sources, and the console likewise (once per process); returns those built. */
export function ensureServicesBuilt(force = false): Promise<string[]> {
  built ??= (async () => {
    const names = SERVICES.filter((name) => force || outOfDate(name));
    for (const name of names) await buildService(name);
    const consoleStale = force || !existsSync(CONSOLE.index) || newest([CONSOLE.sources, join(root, 'package-lock.json')]) > statSync(CONSOLE.index).mtimeMs;
    if (consoleStale) await buildConsole();
    return [...names, ...(consoleStale ? ['console'] : [])];
  })();
  return built;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = Date.now();
  const names = await ensureServicesBuilt(process.argv.includes('--force'));
  console.log(names.length > 0 ? `[build] bundled in ${Date.now() - started} ms: ${names.map((s) => (s === 'console' ? 'services/control/dist/console' : `services/${s}/dist/main.mjs`)).join(', ')}` : '[build] service bundles and console up to date');
}
