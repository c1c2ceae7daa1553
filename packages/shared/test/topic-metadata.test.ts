import type { Admin } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { topicMetadataOnceKnown } from '../src/kafka/client.js';

/** kafkajs's protocol error as it throws one (type and code of the broker's answer). */
const protocolError = (type: string) => Object.assign(new Error(`broker said ${type}`), { name: 'KafkaJSProtocolError', type, retriable: true });

/** An admin client whose fetchTopicMetadata answers from a script: what the test needs of it, nothing else. */
const admin = (answers: Array<Error | Array<{ name: string; partitions: Array<{ leader: number }> }>>) => {
  let asked = 0;
  return {
    asked: () => asked,
    admin: { fetchTopicMetadata: async () => {
      const a = answers[Math.min(asked++, answers.length - 1)]!;
      if (a instanceof Error) throw a;
      return { topics: a };
    } } as unknown as Admin,
  };
};

describe('topicMetadataOnceKnown: a topic just created, on a broker whose metadata lags its controller', () => {
  it('asks again while the broker does not know the topic or its leaders yet, then answers', async () => {
    const known = [{ name: 't', partitions: [{ leader: 1 }, { leader: 1 }, { leader: 1 }] }];
    const a = admin([protocolError('UNKNOWN_TOPIC_OR_PARTITION'), [{ name: 't', partitions: [{ leader: -1 }, { leader: 1 }, { leader: 1 }] }], protocolError('LEADER_NOT_AVAILABLE'), known]);
    expect(await topicMetadataOnceKnown(a.admin, ['t'])).toEqual(known);
    expect(a.asked()).toBe(4);
  });

  it('fails at once on any other answer (an ACL, say)', async () => {
    const a = admin([protocolError('TOPIC_AUTHORIZATION_FAILED')]);
    await expect(topicMetadataOnceKnown(a.admin, ['t'])).rejects.toMatchObject({ type: 'TOPIC_AUTHORIZATION_FAILED' });
    expect(a.asked()).toBe(1);
  });
});
