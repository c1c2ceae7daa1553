import { z } from 'zod';
import { commonServiceEnv } from '@cityshare/shared';

/** cdc-reader settings from the environment; the pipeline file holds the rest. */
export const readerEnv = z.object({
  ...commonServiceEnv('cdc-reader'),
  READER_SOURCE: z.string().optional().describe('source name from the pipeline file; may be omitted when there is one'),
  READER_SERVER_ID: z.coerce.number().int().min(1).max(4294967295).optional().describe("this instance's replica server id; overrides the pipeline file's sources[].serverId. Unset in both: a random id in 1073741824..2147483647, new at every start"),
  READER_START_FROM: z.enum(['latest', 'earliest']).default('latest').describe('where to start when there is no checkpoint: the binlog end, or the oldest binlog still on the server'),
  READER_SNAPSHOT: z.enum(['initial', 'never']).default('initial').describe('initial: snapshot registered tables not yet snapshotted (first start, or newly registered), while streaming'),
  READER_SNAPSHOT_CHUNK_ROWS: z.coerce.number().int().min(1).max(100_000).default(4096).describe('rows per snapshot chunk: memory bound and unit of resumption'),
  READER_ON_PURGED: z.enum(['fail', 'resnapshot']).default('fail').describe('when the checkpoint binlog was purged: stop with BINLOG_PURGED, or start at the binlog end and re-snapshot every table'),
  READER_LEASE_REDIS_URL: z.string().optional().describe('Redis URL for the active/standby lease; unset runs a single reader without a standby'),
  READER_LEASE_TTL_MS: z.coerce.number().int().min(500).default(10_000).describe('lease time to live: a standby takes over at most this long after the active reader dies'),
  READER_TRANSACTION_MARKERS: z.enum(['true', 'false']).default('false').transform((v) => v === 'true').describe('publish one end-of-transaction record per transaction that changed registered tables to <prefix>.transactions.<source>'),
  READER_QUEUE_MAX_BYTES: z.coerce.number().int().min(1 << 20).default(16 << 20).describe('bytes of change events held between binlog and Kafka before the binlog stream pauses'),
  READER_FRAME_MAX_EVENTS: z.coerce.number().int().min(1).max(10_000).default(1000).describe('change events per raw-topic message (frame) at most; 1 sends one message per event'),
  READER_EVENT_MAX_BYTES: z.coerce.number().int().min(64 << 10).default(1_000_000).describe("bytes of one change event as a raw-topic message (a frame of its own, protected columns sealed) at most: a larger one is not produced but goes to <prefix>.dlq.reader.<source> as EVENT_TOO_LARGE (position, size, sealed key; no values) and the reader goes on. Keep it below the broker's message.max.bytes and the raw topics' max.message.bytes (Kafka's default 1048588)"),
  READER_HEARTBEAT_SECONDS: z.coerce.number().min(0).max(3600).default(5).describe('idle seconds after which the source sends a heartbeat (master_heartbeat_period): the checkpoint advances, lag reads 0, and a record goes to <prefix>.heartbeats; 0 turns it off'),
  READER_CHECKPOINT_INTERVAL_MS: z.coerce.number().int().min(10).default(1000).describe('how often the position Kafka acknowledged is saved as the checkpoint (a restart resumes there; changes after it are read again and deduplicated by version at the targets)'),
  READER_ADOPT_UNSIGNED_CHECKPOINT: z.enum(['true', 'false']).default('false').transform((v) => v === 'true').describe('upgrade from a reader that wrote unsigned checkpoints: when the source has no signed checkpoint, resume from the newest unsigned one (it is written back signed at start); set it for one start only'),
});

export type ReaderEnv = z.infer<typeof readerEnv>;
