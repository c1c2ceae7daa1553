import type { Consumer, ConsumerConfig } from 'kafkajs';
import type { CdcError } from '../errors.js';
import type { Logger } from '../logger.js';
import { ContactWatch } from './contact-watch.js';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { onConsumerDeath } from './security.js';

/**
 * Group timing of every consumer group whose members share work (transformer department
 * streams, sinks). A member killed without leaving (kill -9, lost host) holds its partitions
 * until its session times out: 8 s instead of kafkajs' 30 s, so a restarted or surviving
 * member takes them over within 10 s. Heartbeats go out at most every second between
 * batches; a member that leaves cleanly (SIGTERM) hands its partitions over at once.
 */
export const GROUP_TIMING = { sessionTimeout: 8_000, heartbeatInterval: 1_000, rebalanceTimeout: 30_000 } as const;

/** Consumer settings of a work-sharing group: read-committed, no topic creation, new topics seen within 5 s, GROUP_TIMING. */
export function groupConsumerConfig(groupId: string): ConsumerConfig {
  return { groupId, readUncommitted: false, allowAutoTopicCreation: false, metadataMaxAge: 5_000, ...GROUP_TIMING };
}

/**
 * What a service knows about its membership in a group, from the consumer's own events:
 * whether it has joined, which partitions it holds, whether the brokers still answer
 * (heartbeats and fetched batches; ContactWatch logs and reports the change), and whether the
 * consumer stopped for good (then `onDead` has its coded error).
 */
export class GroupMember {
  private joined = false;
  private dead: CdcError | undefined;
  private lastContact = Date.now();
  private held = new Map<string, number[]>();
  /** Batches handed to the work and not finished, by "topic partition p": since when. */
  private readonly inWork = new Map<string, number>();
  private readonly contact: ContactWatch;

  constructor(consumer: Consumer, o: {
    settings: Pick<PipelineConfig['kafka'], 'ssl' | 'sasl' | 'brokers'>;
    logger: Logger;
    /** Who is speaking, for the log: "department health", "sink". */
    what: string;
    onDead: (err: CdcError) => void;
    onAssigned?: (assignment: ReadonlyMap<string, number[]>) => void;
    /** Kafka reachable (true) or not, on each change. */
    onContact?: (up: boolean) => void;
  }) {
    const touch = () => {
      this.lastContact = Date.now();
    };
    this.contact = new ContactWatch({
      silentMs: () => Date.now() - this.lastContact,
      what: o.what,
      brokers: o.settings.brokers,
      logger: o.logger,
      onChange: o.onContact,
      detail: () => this.batchInWork(),
    });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      touch();
      this.joined = true;
      this.held = new Map(Object.entries(payload.memberAssignment));
      o.logger.info({ groupId: payload.groupId, memberId: payload.memberId, assignment: payload.memberAssignment }, `${o.what}: joined its consumer group`);
      o.onAssigned?.(this.held);
    });
    consumer.on(consumer.events.REBALANCING, () => {
      this.joined = false;
      this.inWork.clear();
    });
    // Answers of the brokers: a heartbeat, or a batch fetched (kafkajs' FETCH event also fires on a fetch that failed).
    consumer.on(consumer.events.HEARTBEAT, touch);
    // No heartbeat goes out while a batch is worked on: a batch whose work never ends (a stall in
    // the service or its destination) silences the member as a broker outage would; readiness
    // and the KAFKA_UNREACHABLE line then name that batch too.
    consumer.on(consumer.events.START_BATCH_PROCESS, ({ payload }) => {
      touch();
      this.inWork.set(`${payload.topic} partition ${payload.partition}`, Date.now());
    });
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => this.inWork.delete(`${payload.topic} partition ${payload.partition}`));
    consumer.on(consumer.events.CRASH, () => this.inWork.clear());
    onConsumerDeath(consumer, o.settings, (err) => {
      this.joined = false;
      this.dead = err;
      this.contact.stop();
      o.onDead(err);
    });
  }

  /** The partitions of each topic this member holds since its last join. */
  get assignment(): ReadonlyMap<string, number[]> {
    return this.held;
  }

  /** true, or why this member does no work now. */
  ready(): true | string {
    if (this.dead) return `consumer stopped (${this.dead.code})`;
    const contact = this.contact.check();
    if (contact !== true) return contact;
    if (!this.joined) return 'joining its consumer group';
    return true;
  }

  /** The batch in work the longest, if for more than 5 s: what may be silencing this member instead of the brokers. */
  private batchInWork(): string {
    const [oldest] = [...this.inWork].sort((a, b) => a[1] - b[1]);
    if (!oldest || Date.now() - oldest[1] < 5_000) return '';
    return `the work on a batch of ${oldest[0]} has not ended for ${Math.round((Date.now() - oldest[1]) / 1000)} s (no heartbeat goes out meanwhile: if other clients reach the brokers, the stall is in this service or its destination)`;
  }

  /** false once the consumer stopped for good: a process in that state should be restarted. */
  get alive(): boolean {
    return this.dead === undefined;
  }

  stop(): void {
    this.contact.stop();
  }
}
