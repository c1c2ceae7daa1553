import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaConnection, type PipelineConfig } from '@cityshare/shared';
import { stack } from './stack.js';

type KafkaSettings = Pick<PipelineConfig['kafka'], 'brokers' | 'ssl' | 'sasl'>;

/** Where the local stack keeps each SCRAM user's password (deploy/local/stack.sh kafka-users). */
export function kafkaPasswordFile(user: string): string {
  return join(stack.stackDir, 'kafka', 'users', `${user}.password`);
}

/** Creates the stack's SCRAM users that do not exist yet (one JVM for all of them). */
export function ensureKafkaUsers(users: string[]): void {
  const missing = [...new Set(users)].filter((u) => !existsSync(kafkaPasswordFile(u)));
  if (missing.length === 0) return;
  const result = spawnSync('bash', ['deploy/local/stack.sh', 'kafka-users', ...missing], { cwd: stack.root, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`could not create Kafka users ${missing.join(', ')}: ${result.stderr || result.stdout}`);
}

/** The environment that makes a process authenticate to the local stack as `user` (the demo pipeline reads it). */
export function kafkaUserEnv(user: string): { KAFKA_USERNAME: string; KAFKA_PASSWORD_FILE: string } {
  ensureKafkaUsers([user]);
  return { KAFKA_USERNAME: user, KAFKA_PASSWORD_FILE: kafkaPasswordFile(user) };
}

/** Connection settings of `user` on the local stack, over SASL_SSL with the stack's CA. */
export function kafkaSettingsOf(user: string, brokers: string[] = stack.kafkaBrokers): KafkaSettings {
  const { KAFKA_PASSWORD_FILE } = kafkaUserEnv(user);
  return { brokers, ssl: { ca: stack.caFile, verifyHostname: true }, sasl: { mechanism: 'scram-sha-512', username: user, passwordFile: KAFKA_PASSWORD_FILE } };
}

/** The stack's administrator (a super user): what tests use to look at topics, never what services use. */
export function adminKafkaSettings(brokers: string[] = stack.kafkaBrokers): KafkaSettings {
  return { brokers, ssl: { ca: stack.caFile, verifyHostname: true }, sasl: { mechanism: 'scram-sha-512', username: 'admin', passwordFile: kafkaPasswordFile('admin') } };
}

/** A kafkajs client of the administrator, for test set-up and inspection. */
export function adminKafka(clientId: string, brokers: string[] = stack.kafkaBrokers): Kafka {
  return new Kafka({ clientId, ...kafkaConnection(adminKafkaSettings(brokers)), logLevel: logLevel.NOTHING });
}
