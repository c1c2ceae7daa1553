import { readFileSync } from 'node:fs';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { ConnectionOptions as MysqlConnectionOptions, SslOptions as MysqlSslOptions } from 'mysql2';
import { z } from 'zod';
import { CdcError } from './errors.js';
import type { mysqlTls, postgresTls, SourceConfig } from './config/pipeline-schema.js';

/**
 * The pipeline file's TLS settings as each client library takes them. Each builder reads
 * its files once, when a client is built (paths are absolute after loadPipeline); the
 * contents are never logged.
 */
export type MysqlTlsConfig = z.output<typeof mysqlTls>;
export type PostgresTlsConfig = z.output<typeof postgresTls>;

/** The contents of a PEM file named in the pipeline file. */
export function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new CdcError('CONFIG_INVALID', `${what}: cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { details: { path } });
  }
}

function clientCertificate(tls: { cert?: string | undefined; key?: string | undefined }, what: string): { cert?: Buffer; key?: Buffer } {
  return tls.cert && tls.key ? { cert: readPem(tls.cert, `${what} cert`), key: readPem(tls.key, `${what} key`) } : {};
}

/** mysql2's `ssl`: the chain is always checked; the name too unless verifyIdentity is false. */
export function mysqlSslOptions(tls: MysqlTlsConfig | undefined, what: string): MysqlSslOptions | undefined {
  if (!tls) return undefined;
  return {
    ca: readPem(tls.ca, `${what} ca`),
    ...clientCertificate(tls, what),
    rejectUnauthorized: true,
    verifyIdentity: tls.verifyIdentity,
    ...(tls.minVersion ? { minVersion: tls.minVersion } : {}),
  };
}

/** Connection options of a source (host, account, TLS) for mysql2 and zongji alike. */
export function sourceConnectionOptions(source: SourceConfig): MysqlConnectionOptions {
  const { host, port, user, password, ssl } = source.connection;
  const sslOptions = mysqlSslOptions(ssl, `sources.${source.name}.connection.ssl`);
  return { host, port, user, password, ...(sslOptions ? { ssl: sslOptions } : {}) };
}

/** pg's `ssl` for a libpq-style mode. */
export function postgresSslOptions(tls: PostgresTlsConfig | undefined, what: string): TlsConnectionOptions | undefined {
  if (!tls) return undefined;
  if (tls.mode === 'require') return { rejectUnauthorized: false, ...clientCertificate(tls, what) };
  return {
    ...(tls.ca ? { ca: readPem(tls.ca, `${what} ca`) } : {}),
    ...clientCertificate(tls, what),
    rejectUnauthorized: true,
    ...(tls.mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}),
  };
}

/** ioredis options for a rediss:// URL with its own CA (rediss:// alone uses the system CAs). */
export function redisTlsOptions(redisTls: { ca: string } | undefined, what: string): { tls?: TlsConnectionOptions } {
  return redisTls ? { tls: { ca: readPem(redisTls.ca, `${what} ca`) } } : {};
}

/** amqplib socket options for an amqps:// broker with its own CA. */
export function amqpSocketOptions(ca: string | undefined, what: string): { ca?: Buffer[] } {
  return ca ? { ca: [readPem(ca, `${what} ca`)] } : {};
}
