import { readFileSync } from 'node:fs';
import { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSProtocolError, KafkaJSSASLAuthenticationError } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { aclPlan, diffAcls, type AclRule } from '../src/kafka/acls.js';
import { kafkaSecurityError } from '../src/kafka/security.js';
import { isCdcError } from '../src/errors.js';

const demo = parsePipeline(readFileSync(new URL('../../../deploy/local/pipeline.yaml', import.meta.url), 'utf8'), { KAFKA_USERNAME: 'x', KAFKA_PASSWORD_FILE: '/x' });
const plan = aclPlan(demo);
const of = (principal: string) => plan.filter((r) => r.principal === principal);
/** Whether `rule` lets its principal do `operation` on the topic `name`. */
const covers = (rule: AclRule, resourceType: AclRule['resourceType'], name: string) =>
  rule.resourceType === resourceType && (rule.pattern === 'literal' ? rule.name === name : name.startsWith(rule.name));
const may = (principal: string, operation: AclRule['operation'], resourceType: AclRule['resourceType'], name: string) =>
  of(principal).some((r) => r.operation === operation && covers(r, resourceType, name));

describe('ACLs the catalog implies', () => {
  const share = (department: string) => `demo.share.${department}.cityhub.civil.citizens`;

  it('lets a department read its granted share topics with its own groups, and nothing else', () => {
    expect(may('User:department-haidian', 'read', 'topic', share('haidian'))).toBe(true);
    expect(may('User:department-haidian', 'read', 'group', 'demo.department.haidian.app')).toBe(true);
    expect(may('User:department-haidian', 'read', 'topic', share('health'))).toBe(false);
    expect(may('User:department-haidian', 'read', 'topic', 'demo.raw.cityhub.civil.citizens')).toBe(false);
    expect(may('User:department-haidian', 'read', 'group', 'demo.sink.haidian')).toBe(false);
    expect(of('User:department-haidian').filter((r) => r.operation !== 'read' && r.operation !== 'describe')).toEqual([]);
    // Its topics are named one by one: a grant revoked is an ACL removed.
    expect(of('User:department-haidian').filter((r) => r.resourceType === 'topic').every((r) => r.pattern === 'literal')).toBe(true);
  });

  it('lets no principal but the reader write raw or checkpoint topics', () => {
    const writers = (topic: string) => [...new Set(plan.filter((r) => r.operation === 'write' && covers(r, 'topic', topic)).map((r) => r.principal))];
    expect(writers('demo.raw.cityhub.civil.citizens')).toEqual(['User:reader-cityhub']);
    expect(writers('demo.checkpoints')).toEqual(['User:reader-cityhub']);
    expect(writers('demo.table-schemas')).toEqual(['User:reader-cityhub']);
    expect(writers('demo.dlq.reader.cityhub')).toEqual(['User:reader-cityhub']);
    expect(writers(share('health'))).toEqual(['User:transformer']);
  });

  it("gives a department's sink that department's share topics only", () => {
    expect(may('User:sink-health', 'read', 'topic', share('health'))).toBe(true);
    expect(may('User:sink-health', 'read', 'topic', share('haidian'))).toBe(false);
    expect(may('User:sink-health', 'write', 'topic', 'demo.audit.deliveries')).toBe(true);
    expect(may('User:sink-health', 'write', 'topic', share('health'))).toBe(false);
  });

  it('takes principal names from the pipeline file', () => {
    const custom = aclPlan({ ...demo, kafka: { ...demo.kafka, principals: { ...demo.kafka.principals, department: 'User:CN={department}.gov' } } });
    expect(custom.some((r) => r.principal === 'User:CN=haidian.gov' && r.name === share('haidian'))).toBe(true);
  });

  it("changes only the pipeline's own resources: other prefixes and cluster rules stay", () => {
    const foreign: AclRule = { principal: 'User:department-haidian', resourceType: 'topic', name: 'other.share.haidian.cityhub.x.y', pattern: 'literal', operation: 'read' };
    const stale: AclRule = { principal: 'User:department-haidian', resourceType: 'topic', name: 'demo.share.haidian.cityhub.civil.revoked', pattern: 'literal', operation: 'read' };
    const cluster: AclRule = { principal: 'User:someone', resourceType: 'cluster', name: 'kafka-cluster', pattern: 'literal', operation: 'alter' };
    const diff = diffAcls(plan, [...plan.slice(1), foreign, stale, cluster], 'demo');
    expect(diff).toEqual({ add: [plan[0]], remove: [stale] });
  });
});

describe('Kafka failures as coded errors', () => {
  const settings = { brokers: ['b1:9092'], ssl: { ca: '/etc/ca.crt', verifyHostname: true }, sasl: { mechanism: 'scram-sha-512' as const, username: 'sink-health', password: 's3cret' } };

  it('names the principal of refused credentials, never the password', () => {
    // kafkajs's own classes; its typings leave out the options argument its constructors take.
    const Retries = KafkaJSNonRetriableError as unknown as new (message: string, o: { cause: unknown }) => Error;
    const Sasl = KafkaJSSASLAuthenticationError as unknown as new (message: string) => Error;
    const err = kafkaSecurityError(new Retries('retries exhausted', { cause: new Sasl('SASL SCRAM SHA512 authentication failed') }), settings);
    expect(isCdcError(err, 'KAFKA_AUTH_FAILED')).toBe(true);
    expect((err as Error).message).toContain('User:sink-health');
    expect(JSON.stringify(err)).not.toContain('s3cret');
  });

  it('names the principal and the resource of a missing ACL', () => {
    const denied = new KafkaJSProtocolError({ message: 'Not authorized to access topics', type: 'TOPIC_AUTHORIZATION_FAILED', code: 29, retriable: false } as never);
    expect(kafkaSecurityError(denied, settings, 'demo.raw.x')).toMatchObject({ code: 'KAFKA_NOT_AUTHORIZED', message: 'User:sink-health is not allowed to use topic demo.raw.x (TOPIC_AUTHORIZATION_FAILED)' });
  });

  it('says when the broker certificate is not trusted, and leaves other errors alone', () => {
    const tls = new KafkaJSConnectionError('Connection error: self-signed certificate in certificate chain', { broker: 'b1:9092', code: 'SELF_SIGNED_CERT_IN_CHAIN' } as never);
    expect(kafkaSecurityError(tls, settings)).toMatchObject({ code: 'KAFKA_TLS_FAILED', message: expect.stringContaining('b1:9092') });
    const other = new Error('something else');
    expect(kafkaSecurityError(other, settings)).toBe(other);
  });
});
