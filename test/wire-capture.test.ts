import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../scripts/support/eventually.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';

/** Captures loopback traffic on `ports` into `file` with tcpdump until stopped. */
async function capture(file: string, ports: number[]): Promise<{ stop(): Promise<Buffer> }> {
  const child: ChildProcess = spawn('tcpdump', ['-i', 'lo', '-U', '-s', '0', '-w', file, ports.map((p) => `tcp port ${p}`).join(' or ')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let failed: Error | undefined;
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('error', (err) => (failed = err));
  // tcpdump says "listening on lo" once the capture runs.
  await eventually(() => {
    if (failed) throw new Error(`tcpdump could not start (${failed.message}): install it (apt-get install tcpdump; npm test does) and run as root`);
    expect(stderr).toContain('listening on');
  }, 10_000, 50);
  return {
    stop: async () => {
      await new Promise((r) => setTimeout(r, 500));
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT');
      await exited;
      return readFileSync(file);
    },
  };
}

/**
 * What an eavesdropper on the network sees: the loopback traffic of the broker and the
 * source ports while personal data flows through the pipeline holds none of it (Kafka is
 * SASL_SSL only, the reader reads the binlog and its snapshots over TLS). The same capture
 * of the department's PostgreSQL port (plain on this machine) does show the public column the
 * department received, so the capture would see plaintext if there were any.
 */
describe('no personal value on the wire', () => {
  const run = new PipelineRun();
  const dir = join(stack.root, '.stack', 'test', run.id);
  const person = { name: '诸葛明亮', id_card: '110101199901019876', phone: '13977665544', address: '北京市海淀区清华园捕获测试路8号', district: '海淀捕获区' };
  let secured: Buffer;
  let department: Buffer;

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    await run.setUp();
    const brokerPort = Number(stack.kafkaBrokers[0]!.split(':')[1]);
    const onSecured = await capture(join(dir, 'secured.pcap'), [brokerPort, stack.source.port]);
    const onDepartment = await capture(join(dir, 'department.pcap'), [5432]);
    await run.start('cdc-reader');
    await run.start('transformer');
    await run.start('sink');
    // Written over the server's socket, as an application on the database host would: the
    // statement itself is not what this test looks at.
    const local = await createConnection({ socketPath: join(stack.stackDir, 'mariadb', 'mysqld.sock'), user: 'root', charset: 'utf8mb4' });
    await local.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, birth_date, district, address, registered_at) VALUES (7, ?, ?, ?, '1999-01-01', ?, ?, NOW(6))`, [person.name, person.id_card, person.phone, person.district, person.address]);
    await local.end();
    await eventually(async () => expect((await run.pg.query(`SELECT id FROM "${run.pgSchema}".citizens`)).rows).toEqual([{ id: '7' }]), 60_000, 500);
    secured = await onSecured.stop();
    department = await onDepartment.stop();
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it('holds no personal value in the broker and source traffic', () => {
    expect(secured.length).toBeGreaterThan(20_000);
    for (const [column, value] of Object.entries(person)) {
      expect(secured.includes(Buffer.from(value, 'utf8')), `${column} in clear on the broker or source port`).toBe(false);
    }
    expect(statSync(join(dir, 'secured.pcap')).size).toBe(secured.length);
  });

  it('would see plaintext: the public column is in the plain department connection', () => {
    expect(department.includes(Buffer.from(person.district, 'utf8'))).toBe(true);
  });
});
