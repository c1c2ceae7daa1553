import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ContactWatch, LoopLag, createLogger, startHealthServer, type HealthServer } from '../src/index.js';

const block = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // a wedged event loop
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('health that tells the truth', () => {
  let server: HealthServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('a metrics port already in use stops the service with CONFIG_INVALID saying what to set', async () => {
    server = await startHealthServer({ port: 0, registry: new Registry(), ready: () => true });
    const second = startHealthServer({ port: server.port, registry: new Registry(), ready: () => true });
    await expect(second).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('give each service on this host its own METRICS_PORT') });
  });

  it('listens on METRICS_HOST', async () => {
    server = await startHealthServer({ port: 0, host: '0.0.0.0', registry: new Registry(), ready: () => true });
    const { networkInterfaces } = await import('node:os');
    const external = Object.values(networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    const host = external?.address ?? '127.0.0.1';
    expect((await fetch(`http://${host}:${server.port}/healthz`)).status).toBe(200);
  });

  it('/healthz is 503 with the reason while the process is wedged, /readyz 503 with why it does no work', async () => {
    let live: boolean | string = true;
    let ready: boolean | string = 'joining its consumer group';
    server = await startHealthServer({ port: 0, registry: new Registry(), ready: () => ready, live: () => live });
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${server!.port}${path}`);
      return { status: res.status, body: await res.text() };
    };
    expect(await get('/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get('/readyz')).toEqual({ status: 503, body: 'not ready: joining its consumer group\n' });
    ready = true;
    live = 'event loop blocked for 6.0 s';
    expect(await get('/readyz')).toEqual({ status: 200, body: 'ready\n' });
    expect(await get('/healthz')).toEqual({ status: 503, body: 'unhealthy: event loop blocked for 6.0 s\n' });
  });

  it('LoopLag reports a blocked event loop, and forgets it once the hold time is over', async () => {
    const lag = new LoopLag({ limitMs: 300, tickMs: 50, holdMs: 600 }).start();
    try {
      await sleep(120);
      expect(lag.check()).toBe(true);
      block(500);
      await sleep(80);
      expect(lag.check()).toMatch(/^event loop blocked for 0\.[4-9] s$/);
      await sleep(700);
      expect(lag.check()).toBe(true);
    } finally {
      lag.stop();
    }
  });

  it('ContactWatch says once when the brokers went silent and once when they answer again', async () => {
    const logger = createLogger('test', 'silent');
    const changes: boolean[] = [];
    let silentSince = 0;
    const watch = new ContactWatch({ silentMs: () => (silentSince ? Date.now() - silentSince : 0), what: 'sink of health', brokers: ['b:9093'], logger, onChange: (up) => changes.push(up), limitMs: 200 });
    try {
      expect(watch.check()).toBe(true);
      silentSince = Date.now();
      await sleep(2_300);
      expect(watch.check()).toMatch(/^no answer from the Kafka brokers for \d+ s \(KAFKA_UNREACHABLE\)$/);
      expect(changes).toEqual([false]);
      silentSince = 0;
      await sleep(1_200);
      expect(watch.check()).toBe(true);
      expect(changes).toEqual([false, true]);
    } finally {
      watch.stop();
    }
  });
});
