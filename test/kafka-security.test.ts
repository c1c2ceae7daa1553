import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consumeShareTopics, departmentGroupPrefix, kafkaConnection, kafkaSecurityError, type CdcError, type ShareChange } from '@cityshare/shared';
import { eventually } from '../scripts/support/eventually.js';
import { kafkaPasswordFile, kafkaSettingsOf } from '../scripts/support/kafka-security.js';
import { PipelineRun } from '../scripts/support/pipeline-run.js';
import { stack } from '../scripts/support/stack.js';

/**
 * The secure data plane on the real broker (SASL_SSL, StandardAuthorizer, no ACL = no
 * access): each principal may do what its role needs and nothing else. The department
 * Haidian, connecting to Kafka itself, reads its own share topic and is refused everything
 * else with an authorization error (not a timeout).
 */
describe('Kafka principals and ACLs', () => {
  const run = new PipelineRun();
  const haidian = () => kafkaSettingsOf('department-haidian');
  const shareOf = (department: string) => `${run.prefix}.share.${department}.cityhub.${run.civilDb}.citizens`;

  /** What a kafkajs call by `settings`' principal fails with, as the pipeline codes it. */
  const refusal = async (settings: ReturnType<typeof haidian>, work: (kafka: Kafka) => Promise<unknown>, resource?: string): Promise<CdcError> => {
    const kafka = new Kafka({ clientId: 'test-intruder', ...kafkaConnection(settings), logLevel: logLevel.NOTHING, retry: { retries: 1 } });
    try {
      await work(kafka);
    } catch (err) {
      return kafkaSecurityError(err, settings, resource) as CdcError;
    }
    throw new Error('the broker allowed it');
  };

  /** Reads a topic with a fresh consumer of `settings`' principal; resolves with the first error. */
  const tryRead = (settings: ReturnType<typeof haidian>, topic: string, groupId: string) =>
    refusal(settings, async (kafka) => {
      const consumer = kafka.consumer({ groupId });
      await consumer.connect();
      try {
        await consumer.subscribe({ topic, fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error));
          void consumer.run({ eachMessage: async () => resolve() }).catch(reject);
          setTimeout(() => reject(new Error(`no error and no message on ${topic} within 20 s`)), 20_000);
        });
      } finally {
        await consumer.disconnect();
      }
    }, topic);

  beforeAll(async () => {
    await run.setUp();
    await run.start('cdc-reader');
    await run.start('transformer');
    await run.source.query(`INSERT INTO \`${run.civilDb}\`.citizens (id, name, id_card, phone, birth_date, district, address, registered_at) VALUES
      (1, '张三', '110101199001011234', '13812341234', '1990-01-01', '海淀', '北京市海淀区中关村大街1号', NOW(6)),
      (2, '李四', '110101198501011234', '13912341234', '1985-01-01', '西城', '北京市西城区金融街1号', NOW(6))`);
  });

  afterAll(async () => {
    await run.tearDown();
  });

  it("lets a department read its own share topic, with a group of its own prefix", async () => {
    const seen: ShareChange[] = [];
    const consumer = await consumeShareTopics({
      kafka: haidian(),
      registryUrl: stack.registryUrl,
      topics: [shareOf('haidian')],
      groupId: `${departmentGroupPrefix(run.prefix, 'haidian')}app`,
      onChange: async (c) => void seen.push(c),
    });
    try {
      await eventually(() => expect(seen.map((c) => c.key.id)).toEqual(['1']));
    } finally {
      await consumer.stop();
    }
  });

  it("refuses the department another department's share topic, raw topics, checkpoints, dead letters and foreign groups", async () => {
    const group = `${departmentGroupPrefix(run.prefix, 'haidian')}probe`;
    await expect(tryRead(haidian(), shareOf('health'), group)).resolves.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED', message: expect.stringContaining('User:department-haidian') });
    await expect(tryRead(haidian(), `${run.prefix}.raw.cityhub.${run.civilDb}.citizens`, group)).resolves.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED' });
    await expect(tryRead(haidian(), `${run.prefix}.checkpoints`, group)).resolves.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED' });
    await expect(tryRead(haidian(), `${run.prefix}.dlq.transformer`, group)).resolves.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED' });
    // Its own topic, but in the transformer's consumer group.
    await expect(tryRead(haidian(), shareOf('haidian'), `${run.prefix}.transformer.haidian`)).resolves.toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED', details: { kind: 'consumer group' } });
  });

  it('refuses every write by a department, even to its own share topic', async () => {
    for (const topic of [shareOf('haidian'), `${run.prefix}.raw.cityhub.${run.civilDb}.citizens`, `${run.prefix}.checkpoints`]) {
      const err = await refusal(haidian(), async (kafka) => {
        const producer = kafka.producer({ allowAutoTopicCreation: false });
        await producer.connect();
        try {
          await producer.send({ topic, messages: [{ key: 'cityhub', value: '{"file":"mariadb-bin.999999","pos":4}' }] });
        } finally {
          await producer.disconnect();
        }
      }, topic);
      expect(err, topic).toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED' });
    }
  });

  it('refuses a wrong password and an untrusted certificate with coded errors that name no secret', async () => {
    const settings = haidian();
    const wrong = { ...settings, sasl: { mechanism: 'scram-sha-512' as const, username: 'department-haidian', password: 'not-the-password' } };
    const auth = await refusal(wrong, async (kafka) => kafka.admin().connect());
    expect(auth).toMatchObject({ code: 'KAFKA_AUTH_FAILED', message: expect.stringContaining('User:department-haidian') });
    expect(JSON.stringify({ message: auth.message, details: auth.details })).not.toContain('not-the-password');

    // Without the stack's CA the broker's certificate is not trusted.
    const untrusted = { ...settings, ssl: { verifyHostname: true } };
    await expect(refusal(untrusted, async (kafka) => kafka.admin().connect())).resolves.toMatchObject({ code: 'KAFKA_TLS_FAILED' });
  });

  it('keeps every password out of the services’ logs', async () => {
    const passwords = ['reader-cityhub', 'transformer'].map((u) => readFileSync(kafkaPasswordFile(u), 'utf8'));
    const logs = readdirSync(join(stack.root, '.stack', 'logs', 'test')).filter((f) => f.startsWith(run.id));
    expect(logs.length).toBeGreaterThan(0);
    for (const f of logs) {
      const text = readFileSync(join(stack.root, '.stack', 'logs', 'test', f), 'utf8');
      for (const p of passwords) expect(text.includes(p), f).toBe(false);
    }
  });
});
