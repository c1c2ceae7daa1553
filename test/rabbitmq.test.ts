import { connect, type Channel, type ChannelModel } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileKeyring } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { CITIZEN_CLASSES, PipelineRun } from '../scripts/support/pipeline-run.js';
import type { ServiceProcess } from '../scripts/support/service-process.js';
import { stack } from '../scripts/support/stack.js';

interface Received {
  id: string;
  routingKey: string;
  persistent: boolean;
  body: { department: string; table: string; op: string; version: string; values: Record<string, unknown> };
}

/** Delivery to a department's exchange on the real RabbitMQ, with publisher confirms. */
describe('rabbitmq target', () => {
  const run = new PipelineRun();
  const exchange = `${run.id}.bureau`;
  const env = { CITYSHARE_PIPELINE: '', SINK_DEPARTMENT: 'bureau' };
  let amqp: ChannelModel;
  let channel: Channel;
  let sink: ServiceProcess;
  const received: Received[] = [];
  const insert = (from: number, to: number) =>
    run.source.query(
      `INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, district, registered_at) VALUES ${Array.from({ length: to - from + 1 }, (_, i) => `(${from + i}, '王小明', '110101199001010000', '13800000000', '海淀', NOW(6))`).join(', ')}`,
    );

  beforeAll(async () => {
    await run.setUp();
    FileKeyring.ensure(run.keyringFile, ['department:bureau']);
    env.CITYSHARE_PIPELINE = run.writePipelineFile('rabbitmq-pipeline.yaml', {
      serverId: 5801,
      tables: [{ name: `${run.civilDb}.citizens`, columns: CITIZEN_CLASSES }],
      departments: [{
        name: 'bureau',
        target: { kind: 'rabbitmq', url: stack.rabbitmqUrl, exchange },
        grants: [{ table: `cityhub.${run.civilDb}.citizens`, columns: { id: 'pass', name: { mask: 'name' }, district: 'pass', id_card: 'encrypt' } }],
      }],
    });
    // The department's side: a durable queue bound to its exchange.
    amqp = await connect(stack.rabbitmqUrl);
    channel = await amqp.createChannel();
    await channel.assertExchange(exchange, 'topic', { durable: true });
    const { queue } = await channel.assertQueue(`${run.id}.bureau.inbox`, { durable: true });
    await channel.bindQueue(queue, exchange, 'citizens.*');
    await channel.consume(queue, (m) => {
      if (!m) return;
      received.push({ id: m.properties.messageId as string, routingKey: m.fields.routingKey, persistent: m.properties.deliveryMode === 2, body: JSON.parse(m.content.toString()) });
      channel.ack(m);
    });
    await run.start('cdc-reader', env);
    await run.start('transformer', env);
    sink = await run.start('sink', env);
  });

  afterAll(async () => {
    await channel.deleteQueue(`${run.id}.bureau.inbox`).catch(() => undefined);
    await channel.deleteExchange(exchange).catch(() => undefined);
    await amqp.close();
    await run.tearDown();
  });

  it('publishes each change as a persistent JSON message, routed by table and op, in order per key', async () => {
    await insert(1, 3);
    await run.source.query(`UPDATE \`${run.civilDb}\`.citizens SET district = '西城' WHERE id = 2`);
    await run.source.query(`DELETE FROM \`${run.civilDb}\`.citizens WHERE id = 3`);
    await eventually(() => expect(received).toHaveLength(5), 60_000, 200);
    expect(received.every((r) => r.persistent)).toBe(true);
    const of2 = received.filter((r) => r.body.values.id === '2');
    expect(of2.map((r) => r.routingKey)).toEqual(['citizens.c', 'citizens.u']);
    expect(of2[1]!.body).toMatchObject({ department: 'bureau', table: 'citizens', op: 'u', values: { id: '2', name: '王**', district: '西城' } });
    expect(of2[1]!.id).toBe(`citizens/${of2[1]!.body.version}`);
    // Encrypted for the department, as base64.
    expect(Buffer.from(of2[1]!.body.values.id_card as string, 'base64')[0]).toBe(3);
    expect(received.find((r) => r.body.values.id === '3' && r.body.op === 'd')).toBeTruthy();
  });

  it('loses nothing when the sink is killed mid-stream (a consumer drops repeated message ids)', async () => {
    const writing = (async () => {
      for (let i = 0; i < 10; i++) await insert(100 + i * 100, 100 + i * 100 + 99);
    })();
    await eventually(() => expect(received.length).toBeGreaterThan(105), 60_000, 50);
    await sink.kill();
    await writing;
    sink = await run.start('sink', env);
    await eventually(() => expect(new Set(received.map((r) => r.id)).size).toBe(5 + 1000), 90_000, 500);
  });
});
