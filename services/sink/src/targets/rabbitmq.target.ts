import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { z } from 'zod';
import { CdcError, amqpSocketOptions, pemFile, redactUrl, secretSetting, withoutSecrets, type Logger } from '@cityshare/shared';
import { changeJson } from './change-json.js';
import { ConnectionFaults, type TargetOutage } from './connection-faults.js';
import type { ApplyResult, RowChange, Target, TargetTable } from './target.js';
import { defineTarget } from './target-definition.js';

/** kind `rabbitmq`: the department's exchange on a RabbitMQ broker. */
export const rabbitmqDefinition = defineTarget({
  config: z.strictObject({
    kind: z.literal('rabbitmq'),
    url: z.string().regex(/^amqps?:\/\//, 'amqp://user:password@host:5672/vhost').describe('amqp:// or amqps:// URL of the broker').meta(secretSetting),
    exchange: z.string().min(1).describe("the department's exchange; declared durable when missing"),
    exchangeType: z.enum(['topic', 'direct', 'fanout', 'headers']).default('topic').describe('exchange type; messages are routed with <table>.<op>'),
    ca: pemFile('CA certificate(s) of an amqps:// broker not signed by a system CA').optional(),
  }).refine((t) => t.ca === undefined || t.url.startsWith('amqps://'), { path: ['ca'], message: 'ca needs an amqps:// url' }),
  capabilities: { delivery: 'stream', signs: () => false },
  // Its CA is a setting of the target itself.
  tlsFiles: (t) => [{ at: '', files: t }],
  create: (t, ctx) => new RabbitmqTarget({ department: ctx.department.name, url: t.url, exchange: t.exchange, exchangeType: t.exchangeType, ca: t.ca }, ctx.logger, ctx.outage),
});

export interface RabbitmqTargetOptions {
  department: string;
  /** amqp://user:password@host:5672/vhost */
  url: string;
  /** The department's exchange; declared durable when missing. */
  exchange: string;
  exchangeType: 'topic' | 'direct' | 'fanout' | 'headers';
  /** CA of an amqps:// broker not signed by a system CA. */
  ca?: string | undefined;
}

/**
 * A department's RabbitMQ exchange. Each change is one persistent JSON message (the
 * change as the webhook sends it, plus `department` and `table`), routing key
 * `<table>.<op>`, message id `<table>/<version>`; a batch counts as delivered only when
 * the broker confirmed every message (publisher confirms), and only then are the Kafka
 * offsets committed. Delivery is at least once: a consumer drops a message id it has
 * seen, or keeps the newest `version` per key.
 */
export class RabbitmqTarget implements Target {
  private connection: ChannelModel | undefined;
  private channel: ConfirmChannel | undefined;
  private readonly faults: ConnectionFaults;

  constructor(private readonly options: RabbitmqTargetOptions, logger: Logger, outage?: TargetOutage) {
    this.faults = new ConnectionFaults(logger, `RabbitMQ exchange ${options.exchange} at ${redactUrl(options.url)}`, (m) => withoutSecrets(m, { urls: [options.url] }), outage);
  }

  async connect(): Promise<void> {
    try {
      // amqplib loaded here, not at import (see target-definition.ts).
      const { connect } = await import('amqplib');
      this.connection = await connect(this.options.url, amqpSocketOptions(this.options.ca, 'target.ca'));
      // A lost connection or a channel the broker closed is dropped here and opened again by the next batch.
      this.connection.on('error', this.faults.listener);
      this.connection.on('close', () => {
        this.connection = undefined;
        this.channel = undefined;
      });
      const channel = await this.connection.createConfirmChannel();
      channel.on('error', this.faults.listener);
      channel.on('close', () => {
        if (this.channel === channel) this.channel = undefined;
      });
      await channel.assertExchange(this.options.exchange, this.options.exchangeType, { durable: true });
      this.channel = channel;
    } catch (cause) {
      throw new CdcError('TARGET_UNREACHABLE', `RabbitMQ exchange ${this.options.exchange} at ${redactUrl(this.options.url)} is not usable: ${withoutSecrets((cause as Error).message, { urls: [this.options.url] })}`, { cause });
    }
  }

  async ensureTable(_table: TargetTable): Promise<void> {}

  async apply(table: TargetTable, changes: RowChange[]): Promise<ApplyResult> {
    if (!this.channel) {
      await this.connection?.close().catch(() => undefined);
      await this.connect();
    }
    const channel = this.channel!;
    try {
      for (const c of changes) {
        const body = Buffer.from(JSON.stringify({ department: this.options.department, table: table.name, ...changeJson(c) }));
        channel.publish(this.options.exchange, `${table.name}.${c.op}`, body, {
          persistent: true,
          contentType: 'application/json',
          messageId: `${table.name}/${c.version}`,
          type: c.op,
          timestamp: Math.floor(Number(c.sourceTsMs) / 1000),
        });
      }
      await channel.waitForConfirms();
      this.faults.recovered();
    } catch (cause) {
      throw new CdcError('TARGET_UNREACHABLE', `RabbitMQ did not confirm a batch for ${this.options.exchange}: ${withoutSecrets((cause as Error).message, { urls: [this.options.url] })}`, { cause });
    }
    return { applied: changes.length, stale: 0 };
  }

  async close(): Promise<void> {
    await this.channel?.close().catch(() => undefined);
    await this.connection?.close().catch(() => undefined);
  }
}
