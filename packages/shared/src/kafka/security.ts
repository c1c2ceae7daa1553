import { readFileSync } from 'node:fs';
import type { Consumer, KafkaConfig, SASLOptions } from 'kafkajs';
import { CdcError, isCdcError } from '../errors.js';
import type { PipelineConfig } from '../config/pipeline-schema.js';

type KafkaSettings = PipelineConfig['kafka'];

/**
 * How this process reaches the brokers: TLS with the configured CA (and client certificate),
 * SASL as its own principal. Files are read here, once (the oauthbearer token at every
 * authentication); nothing read here is ever logged.
 */
export function kafkaConnection(settings: Pick<KafkaSettings, 'brokers' | 'ssl' | 'sasl'>): Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl'> {
  return { brokers: settings.brokers, ...(settings.ssl ? { ssl: tlsOptions(settings.ssl) } : {}), ...(settings.sasl ? { sasl: saslOptions(settings.sasl) } : {}) };
}

function tlsOptions(ssl: NonNullable<KafkaSettings['ssl']>): NonNullable<KafkaConfig['ssl']> {
  return {
    rejectUnauthorized: true,
    ...(ssl.ca ? { ca: [readSetting(ssl.ca, 'kafka.ssl.ca')] } : {}),
    ...(ssl.cert && ssl.key ? { cert: readSetting(ssl.cert, 'kafka.ssl.cert'), key: readSetting(ssl.key, 'kafka.ssl.key') } : {}),
    ...(ssl.verifyHostname ? {} : { checkServerIdentity: () => undefined }),
  };
}

function saslOptions(sasl: NonNullable<KafkaSettings['sasl']>): SASLOptions {
  if (sasl.mechanism === 'oauthbearer') {
    const tokenFile = sasl.tokenFile!;
    return { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: readSetting(tokenFile, 'kafka.sasl.tokenFile').trim() }) };
  }
  const password = sasl.password ?? readSetting(sasl.passwordFile!, 'kafka.sasl.passwordFile').replace(/\r?\n$/, '');
  return { mechanism: sasl.mechanism, username: sasl.username!, password } as SASLOptions;
}

function readSetting(file: string, setting: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new CdcError('CONFIG_INVALID', `${setting}: cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? 'unreadable'})`, { cause, details: { setting, file } });
  }
}

/** The principal a connection authenticates as, for error messages (never a secret). */
export function kafkaPrincipal(settings: Pick<KafkaSettings, 'ssl' | 'sasl'>): string {
  if (settings.sasl?.username) return `User:${settings.sasl.username}`;
  if (settings.sasl) return `${settings.sasl.mechanism} token holder`;
  if (settings.ssl?.cert) return `the subject of ${settings.ssl.cert}`;
  return 'User:ANONYMOUS';
}

/** TLS failures Node reports when a broker's certificate is not trusted or names another host. */
const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'EPROTO',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

const AUTHORIZATION_TYPES: Record<string, string> = {
  TOPIC_AUTHORIZATION_FAILED: 'topic',
  GROUP_AUTHORIZATION_FAILED: 'consumer group',
  CLUSTER_AUTHORIZATION_FAILED: 'cluster',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'transactional id',
};

interface KafkaJsErrorShape {
  name?: string;
  type?: string;
  code?: string;
  broker?: string;
  cause?: unknown;
  originalError?: unknown;
  errors?: unknown[];
}

/** The kafkajs error (or its cause, retries and aggregates included) that says why. */
/** A kafkajs error and every error it wraps (cause, originalError, errors), outermost first. */
export function* kafkaErrorChain(err: unknown, depth = 0): Generator<KafkaJsErrorShape> {
  if (!err || typeof err !== 'object' || depth > 8) return;
  const e = err as KafkaJsErrorShape;
  yield e;
  yield* kafkaErrorChain(e.cause, depth + 1);
  yield* kafkaErrorChain(e.originalError, depth + 1);
  for (const inner of e.errors ?? []) yield* kafkaErrorChain(inner, depth + 1);
}

/**
 * A kafkajs failure as a coded error naming the principal and the resource (never a
 * secret): refused credentials, a missing ACL, an untrusted certificate. Anything else is
 * returned as it is. Classified by error class and protocol type, not by message text.
 */
export function kafkaSecurityError(err: unknown, settings: Pick<KafkaSettings, 'ssl' | 'sasl' | 'brokers'>, resource?: string): unknown {
  if (isCdcError(err)) return err;
  const principal = kafkaPrincipal(settings);
  for (const e of kafkaErrorChain(err)) {
    if (e.name === 'KafkaJSSASLAuthenticationError') {
      return new CdcError('KAFKA_AUTH_FAILED', `the brokers (${settings.brokers.join(', ')}) refused ${principal} (${settings.sasl?.mechanism ?? 'no SASL configured'})`, { cause: err, details: { principal, brokers: settings.brokers } });
    }
    const kind = e.type ? AUTHORIZATION_TYPES[e.type] : undefined;
    if (kind) {
      const what = resource ? `${kind} ${resource}` : `a ${kind}`;
      return new CdcError('KAFKA_NOT_AUTHORIZED', `${principal} is not allowed to use ${what} (${e.type})`, { cause: err, details: { principal, resource: resource ?? null, kind } });
    }
    if (e.name === 'KafkaJSConnectionError' && e.code && TLS_CODES.has(e.code)) {
      return new CdcError('KAFKA_TLS_FAILED', `TLS to broker ${e.broker ?? settings.brokers.join(', ')} failed (${e.code})${settings.ssl?.ca ? ` with the CA in ${settings.ssl.ca}` : ''}`, { cause: err, details: { broker: e.broker ?? null, code: e.code } });
    }
  }
  return err;
}

/**
 * Calls `onDead` with a coded error when a consumer stops for good (kafkajs CRASH without a
 * restart of its own: a non-retriable error, or retries exhausted): a refused principal or
 * certificate as such, a CdcError thrown by the work as it is, anything else as
 * CONSUMER_CRASHED, which the service runtime restarts with backoff. Never a consumer that
 * is dead while its process looks ready.
 */
export function onConsumerDeath(consumer: Consumer, settings: Pick<KafkaSettings, 'ssl' | 'sasl' | 'brokers'>, onDead: (err: CdcError) => void): void {
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart) return;
    const coded = kafkaSecurityError(payload.error, settings);
    const cause = [...kafkaErrorChain(payload.error)].find((e) => isCdcError(e));
    onDead(isCdcError(coded) ? coded : isCdcError(cause) ? cause : new CdcError('CONSUMER_CRASHED', `Kafka consumer stopped: ${(payload.error as Error)?.message ?? String(payload.error)}`, { cause: payload.error }));
  });
}
