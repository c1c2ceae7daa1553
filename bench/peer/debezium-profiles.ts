/**
 * The ways the Debezium peer is configured (bench/peer/debezium.ts):
 *
 * - `defaults`: what a first install gives — the JSON converter with schemas in every message,
 *   one JDBC sink task for three partitions, the sink's `batch.size` 500, the Connect
 *   consumer's and producer's stock sizes, the source's stock queue and batch.
 * - `tuned`: what a user who read Debezium's and Kafka Connect's documentation sets for
 *   throughput (bench/peer/README.md gives each setting, why, and the page it comes from):
 *   one sink task per partition, large sink batches fed by large consumer polls, a larger
 *   source queue and batch, the source's producer batching and compressing, no tombstones.
 *   The converter stays JSON with schemas: the JDBC sink cannot work schemaless, and Avro
 *   through Apicurio's converter measured slower here (README, "Avro or JSON").
 * - `tuned-avro`: `tuned` with Avro through the stack's Apicurio registry, the other way the
 *   documentation offers; kept so that measurement can be repeated (not in the suite's default).
 *
 * Only the settings that differ live here; what all share (connection, security, topics,
 * upsert/delete semantics) stays in debezium.ts. The DEBEZIUM_PEER_*_CONFIG overrides are
 * merged on top of any profile.
 */

export const PEER_PROFILES = ['defaults', 'tuned', 'tuned-avro'] as const;
export type PeerProfile = (typeof PEER_PROFILES)[number];
/** What `npm run bench` runs unless --peer-profiles says otherwise. */
export const SUITE_PEER_PROFILES: readonly PeerProfile[] = ['defaults', 'tuned'];

type Props = Record<string, string | number | boolean>;

export interface ProfileContext {
  /** Partitions of each Debezium topic. */
  partitions: number;
  /** Apicurio Registry's own v2 API (the Apicurio converter's client speaks it), e.g. http://127.0.0.1:8081/apis/registry/v2. */
  registryV2Url: string;
}

export interface ProfileSettings {
  worker: Props;
  source: Props;
  sink: Props;
  /** Whether the run needs the Apicurio Avro converter plugin (bench/peer/debezium/avro-converter/pom.xml fetches it). */
  avro: boolean;
}

/** `--profile` / DEBEZIUM_PEER_PROFILE: one profile name. */
export function parsePeerProfile(value: string | undefined, what: string): PeerProfile {
  const v = (value ?? 'defaults').trim();
  if (!(PEER_PROFILES as readonly string[]).includes(v)) throw new Error(`${what} must be one of ${PEER_PROFILES.join(', ')}; got "${v}"`);
  return v as PeerProfile;
}

/** `--peer-profiles defaults,tuned`: a non-empty list without repeats, in the given order. */
export function parsePeerProfiles(value: string, what: string): PeerProfile[] {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean).map((s) => parsePeerProfile(s, what));
  if (list.length === 0) throw new Error(`${what} names no profile (${PEER_PROFILES.join(', ')})`);
  return [...new Set(list)];
}

const TUNED_SUMMARY =
  'one JDBC sink task per partition (3), sink batch.size 5,000 fed by max.poll.records 5,000 and 8 MiB partition fetches, reduction buffer; source max.batch.size 8,192, max.queue.size 32,768, poll.interval.ms 50, no tombstones; source producer linger.ms 10, batch.size 256 KiB, lz4, 5 requests in flight (idempotent)';

/** One line per profile for the suite's notes; kept next to the settings it sums up. */
export const PROFILE_SUMMARY: Record<PeerProfile, string> = {
  defaults: 'JSON converter with schemas, one JDBC sink task, sink batch.size 500, stock consumer polls, stock source queue and producer',
  tuned: `JSON converter with schemas (the JDBC sink needs a schema; Avro measured slower), ${TUNED_SUMMARY}`,
  'tuned-avro': `Avro through the stack's Apicurio registry, ${TUNED_SUMMARY}`,
};

/** Sink batch and the poll that feeds it: a sink batch is never larger than one consumer poll. */
const SINK_BATCH = 5000;

const JSON_WITH_SCHEMAS: Props = {
  'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
  'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
  'key.converter.schemas.enable': true,
  'value.converter.schemas.enable': true,
  // Only start-up time: every plugin used here has a service manifest.
  'plugin.discovery': 'service_load',
};

function apicurioAvro(registryV2Url: string): Props {
  const side = (s: 'key' | 'value'): Props => ({
    [`${s}.converter`]: 'io.apicurio.registry.utils.converter.AvroConverter',
    [`${s}.converter.apicurio.registry.url`]: registryV2Url,
    [`${s}.converter.apicurio.registry.auto-register`]: true,
    [`${s}.converter.apicurio.registry.find-latest`]: true,
  });
  return {
    ...side('key'),
    ...side('value'),
    // The Apicurio converter jar has no ServiceLoader manifest: Connect's default discovery
    // (scan, and warn about plugins without a manifest) finds it. Start-up only, not timed.
    'plugin.discovery': 'hybrid_warn',
  };
}

const TUNED_SOURCE: Props = {
  'tasks.max': 1, // the MariaDB connector always runs one task
  // Debezium's own queue between the binlog reader and Connect: larger batches per poll()
  // and room for a large transaction (defaults 2,048 and 8,192).
  'max.batch.size': 8192,
  'max.queue.size': 32768,
  // An empty queue waits this long before it looks again (default 500 ms): at a steady rate
  // that wait is latency.
  'poll.interval.ms': 50,
  // No tombstone after each delete event: they serve log compaction, which these topics do
  // not use, and the JDBC sink skips them (it deletes on the delete event itself).
  'tombstones.on.delete': false,
  // Connect's source producer: batch per partition for a few ms, compress, and keep 5
  // requests in flight (idempotent, so order is kept); Connect's default is 1 in flight.
  'producer.override.linger.ms': 10,
  'producer.override.batch.size': 262144,
  'producer.override.compression.type': 'lz4',
  'producer.override.enable.idempotence': true,
  'producer.override.max.in.flight.requests.per.connection': 5,
};

function tunedSink(partitions: number): Props {
  return {
    // One task per partition: three consumers and three PostgreSQL connections in parallel.
    'tasks.max': partitions,
    'batch.size': SINK_BATCH,
    // Several changes of one key in a batch become one statement (the last state).
    'use.reduction.buffer': true,
    'consumer.override.max.poll.records': SINK_BATCH,
    // Room for a whole batch per partition in one fetch (default 1 MiB per partition).
    'consumer.override.max.partition.fetch.bytes': 8 * 1024 * 1024,
  };
}

export function profileSettings(profile: PeerProfile, ctx: ProfileContext): ProfileSettings {
  switch (profile) {
    case 'defaults':
      return { worker: JSON_WITH_SCHEMAS, source: { 'tasks.max': 1 }, sink: { 'tasks.max': 1 }, avro: false };
    case 'tuned':
      return { worker: JSON_WITH_SCHEMAS, source: TUNED_SOURCE, sink: tunedSink(ctx.partitions), avro: false };
    case 'tuned-avro':
      // Avro-safe schema names, as Debezium's Avro page asks.
      return { worker: apicurioAvro(ctx.registryV2Url), source: { ...TUNED_SOURCE, 'schema.name.adjustment.mode': 'avro' }, sink: tunedSink(ctx.partitions), avro: true };
  }
}
