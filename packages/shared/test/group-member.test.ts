import { EventEmitter } from 'node:events';
import { Kafka, type Consumer } from 'kafkajs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../src/index.js';
import { GroupMember } from '../src/kafka/group-member.js';

/**
 * A consumer's events as kafkajs names them, raised by the test: what GroupMember listens to.
 * No broker is involved; the integration suites cover the real consumer (scale-out, resilience).
 */
function consumerEvents(): { consumer: Consumer; raise: (event: keyof Consumer['events'], payload: object) => void } {
  const events = new Kafka({ brokers: ['127.0.0.1:1'], logLevel: 0 }).consumer({ groupId: 'g' }).events;
  const emitter = new EventEmitter();
  const consumer = {
    events,
    on: (event: string, listener: (e: unknown) => void) => {
      emitter.on(event, listener);
      return () => emitter.off(event, listener);
    },
  } as unknown as Consumer;
  return { consumer, raise: (event, payload) => emitter.emit(events[event], { payload }) };
}

describe('GroupMember: readiness when the member goes silent', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const member = () => {
    const { consumer, raise } = consumerEvents();
    const m = new GroupMember(consumer, { settings: { brokers: ['kafka:9093'] }, logger: createLogger('test', 'silent'), what: 'department health', onDead: () => undefined });
    raise('GROUP_JOIN', { groupId: 'g', memberId: 'm', memberAssignment: { raw: [0, 1] } });
    return { m, raise };
  };

  it('names the batch whose work has not ended, since no heartbeat goes out meanwhile, and is ready once it ends', () => {
    const { m, raise } = member();
    raise('START_BATCH_PROCESS', { topic: 'raw', partition: 1 });
    vi.advanceTimersByTime(16_000);
    expect(m.ready()).toBe('no answer from the Kafka brokers for 16 s (KAFKA_UNREACHABLE); the work on a batch of raw partition 1 has not ended for 16 s (no heartbeat goes out meanwhile: if other clients reach the brokers, the stall is in this service or its destination)');
    raise('END_BATCH_PROCESS', { topic: 'raw', partition: 1 });
    raise('HEARTBEAT', {});
    expect(m.ready()).toBe(true);
    m.stop();
  });

  it('says only that the brokers are silent when no batch is in work (between batches, or after a crash or rebalance)', () => {
    const { m, raise } = member();
    vi.advanceTimersByTime(16_000);
    expect(m.ready()).toBe('no answer from the Kafka brokers for 16 s (KAFKA_UNREACHABLE)');
    raise('HEARTBEAT', {});
    raise('START_BATCH_PROCESS', { topic: 'raw', partition: 0 });
    raise('CRASH', { error: new Error('x'), restart: true });
    vi.advanceTimersByTime(16_000);
    expect(m.ready()).toBe('no answer from the Kafka brokers for 16 s (KAFKA_UNREACHABLE)');
    m.stop();
  });
});
