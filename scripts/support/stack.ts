import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const stackDir = process.env.STACK_DIR ?? join(root, '.stack');

/** Nodes of the local Kafka as stack.sh last formatted it (1, or 3 after `stack:up -- --brokers 3`). */
function localKafkaNodes(): number {
  try {
    return Number(/nodes=(\d+)/.exec(readFileSync(join(stackDir, 'kafka', 'layout'), 'utf8'))?.[1] ?? 1);
  } catch {
    return 1;
  }
}
const kafkaNodes = localKafkaNodes();
const kafkaPort = Number(process.env.KAFKA_PORT ?? 9092);

/** Where the local stack listens (deploy/local/stack.sh); overridable like the stack itself. */
export const stack = {
  root,
  stackDir,
  /** SASL_SSL listener; principals and their passwords: test/support/kafka-security.ts. */
  kafkaBrokers: process.env.KAFKA_BROKERS?.split(',') ?? Array.from({ length: kafkaNodes }, (_, i) => `127.0.0.1:${kafkaPort + 2 * i}`),
  /** Of the topics test and demo runs create: 3 on a three-node stack. */
  kafkaReplicationFactor: Number(process.env.KAFKA_REPLICATION_FACTOR ?? (kafkaNodes >= 3 ? 3 : 1)),
  /** The local CA that signed the broker's and MariaDB's certificates. */
  caFile: join(stackDir, 'tls', 'ca.crt'),
  source: { host: '127.0.0.1', port: Number(process.env.MARIADB_PORT ?? 3307), user: 'root', password: '' },
  /** CA of the stack's MariaDB TLS certificate: the reader account requires TLS. */
  sourceTlsCa: process.env.SOURCE_TLS_CA ?? join(stackDir, 'tls', 'ca.crt'),
  postgresUrl: process.env.HEALTH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  registryUrl: process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  rabbitmqUrl: process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  /** The machine's own MariaDB (no binlog), used as a department's MySQL-compatible target. */
  targetMariadb: { host: '127.0.0.1', port: Number(process.env.TARGET_MARIADB_PORT ?? 3306), user: 'root' },
};
