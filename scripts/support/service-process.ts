import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ensureServicesBuilt, serviceBundle, serviceNodeFlags } from '../build-services.js';
import { stack } from './stack.js';

export type ServiceName = 'cdc-reader' | 'transformer' | 'sink' | 'control' | 'verifier';

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** One of the pipeline's services as a real child process, as an operator would run it. */
export class ServiceProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> = Promise.resolve(null);
  port = 0;

  constructor(
    readonly name: ServiceName,
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
    /** Runs before every start (e.g. the ACLs the service's principal needs). */
    private readonly beforeStart: () => Promise<void> = async () => undefined,
  ) {}

  /** Starts the process and waits for /readyz (or only /healthz, for a standby). */
  async start({ until = 'ready' }: { until?: 'ready' | 'alive' } = {}): Promise<void> {
    await this.beforeStart();
    this.port = await freePort();
    mkdirSync(join(this.logFile, '..'), { recursive: true });
    const log = createWriteStream(this.logFile, { flags: 'a' });
    const profile = process.env.CITYSHARE_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CITYSHARE_CPU_PROF}`] : [];
    // Node flags to try on one service of a bench or test run (a heap limit, GC settings) before they become its own:
    // CITYSHARE_NODE_FLAGS_TRANSFORMER='--max-old-space-size=192'.
    const tried = (process.env[`CITYSHARE_NODE_FLAGS_${this.name.toUpperCase().replace(/-/g, '_')}`] ?? '').split(' ').filter(Boolean);
    // As an operator runs it: the service's bundle on plain node (npm run build).
    await ensureServicesBuilt();
    const child = spawn(process.execPath, [...profile, ...serviceNodeFlags(this.name), ...tried, serviceBundle(this.name)], {
      cwd: stack.root,
      env: { ...this.env, METRICS_PORT: String(this.port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${this.name} exited with ${child.exitCode}; see ${this.logFile}`);
      const path = until === 'ready' ? 'readyz' : 'healthz';
      const ready = await fetch(`http://127.0.0.1:${this.port}/${path}`).then((r) => r.status === 200, () => false);
      if (ready) return;
      if (Date.now() > deadline) throw new Error(`${this.name} not ready after 90 s; see ${this.logFile}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async isReady(): Promise<boolean> {
    return fetch(`http://127.0.0.1:${this.port}/readyz`).then((r) => r.status === 200, () => false);
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.port}/metrics`)).text();
  }

  /** SIGKILL: the process gets no chance to flush or checkpoint. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGSTOP / SIGCONT: a process whose event loop stands still (a stalled host, a long GC), then runs on. */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /** The partitions this process held at its last join of its consumer group (from its log). */
  assignment(): Record<string, number[]> | undefined {
    const lines = readFileSync(this.logFile, 'utf8').split('\n').filter((l) => l.includes('joined its consumer group') && l.includes(`"pid":${this.pid}`));
    const last = lines.at(-1);
    return last ? (JSON.parse(last) as { assignment: Record<string, number[]> }).assignment : undefined;
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}
