import { createConnection } from 'mysql2/promise';
import type { Admin } from 'kafkajs';
import { binlogEnd } from '@cityshare/cdc-reader/source-check';
import { DEPENDENCY_OF, ERROR_CODES, createKafka, isCdcError, kafkaSecurityError, pipelineTopics, sourceConnectionOptions, topics, type ErrorCode, type Logger, type PipelineConfig } from '@cityshare/shared';
import { metricsTargets, scrape, type Sample } from './metrics-scrape.js';

/** What the control service's GET /status answers, as far as the attention list reads it. */
export interface ControlStatusView {
  catalog?: { sources: number; tables: number; departments: number };
  grants?: Record<string, number>;
  policy?: { file: string; sha256: string | null };
  audit?: { at: string; entries: number; problems: number; head: { seq: number; hash: string }; full: boolean };
  refused?: { grants: number; settings: string | null };
}

export interface Attention {
  code: ErrorCode;
  what: string;
}

export interface DepartmentLag {
  department: string;
  target: string;
  transformerLag: number;
  sinkLag: number;
}

/**
 * Offsets each department's transformer stream and sink have not done yet (offsets, not
 * records: transactional topics hold a commit marker per transaction too), from the groups'
 * committed offsets; a group that never committed owes everything in its topics.
 */
export async function departmentLags(admin: Admin, config: PipelineConfig): Promise<DepartmentLag[]> {
  const prefix = config.kafka.topicPrefix;
  const existing = new Set(await admin.listTopics());
  const lag = async (groupId: string, topicNames: string[]) => {
    const present = topicNames.filter((t) => existing.has(t));
    if (present.length === 0) return 0;
    const committed = await admin.fetchOffsets({ groupId, topics: present });
    let total = 0;
    for (const t of present) {
      for (const p of await admin.fetchTopicOffsets(t)) {
        const done = committed.find((c) => c.topic === t)?.partitions.find((x) => x.partition === p.partition)?.offset ?? '-1';
        total += Number(BigInt(p.high) - (BigInt(done) < 0n ? BigInt(p.low) : BigInt(done)));
      }
    }
    return total;
  };
  const planned = pipelineTopics(config);
  const out: DepartmentLag[] = [];
  for (const d of config.departments) {
    const raw = [...new Set(d.grants.map((g) => {
      const [s, db, t] = g.table.split('.') as [string, string, string];
      return topics.raw(prefix, s, db, t);
    }))];
    out.push({ department: d.name, target: d.target.kind, transformerLag: await lag(`${prefix}.transformer.${d.name}`, raw), sinkLag: await lag(`${prefix}.sink.${d.name}`, planned.share.get(d.name) ?? []) });
  }
  return out;
}

/** What in the control plane's own state needs someone, each with its code (`cdc status`, the console). */
export function controlAttention(control: ControlStatusView | undefined): Attention[] {
  const out: Attention[] = [];
  if (!control) return out;
  if ((control.audit?.problems ?? 0) > 0) out.push({ code: 'AUDIT_LEDGER_TAMPERED', what: `the audit ledger has ${control.audit!.problems} problem(s): cdc audit verify says where` });
  if ((control.refused?.grants ?? 0) > 0) out.push({ code: 'GRANT_TAMPERED', what: `${control.refused!.grants} approved grant(s) left out of the policy (changed in the database)` });
  if (control.refused?.settings) out.push({ code: 'SETTINGS_TAMPERED', what: control.refused.settings });
  if (control.policy && !control.policy.sha256 && (control.catalog?.sources ?? 0) > 0) out.push({ code: 'CONFIG_INVALID', what: 'the control plane has not published a policy: see its log' });
  return out;
}

const CODE_OF_DEPENDENCY = new Map(Object.entries(DEPENDENCY_OF).map(([code, dependency]) => [dependency, code as ErrorCode]));

/** The samples of one metric, from every target that answered. */
const samplesOf = (scraped: Array<{ samples: Sample[] | undefined }>, name: string) => scraped.flatMap((s) => (s.samples ?? []).filter((x) => x.name === name));

/**
 * The pipeline as an SRE looks at it, computed by the control service (GET /pipeline/status,
 * the console's Pipeline page): from the published policy, Kafka (as the control principal),
 * each source's binlog end, and the metrics of the services listed in CONTROL_METRICS_TARGETS
 * (positions, lag, snapshots, paused tables, dead letters, dependencies down).
 */
export class PipelineStatusReader {
  constructor(
    private readonly o: {
      /** The policy last published; undefined before the first publication. */
      published: () => PipelineConfig | undefined;
      /** A Prometheus file_sd file listing the services' metrics endpoints (CONTROL_METRICS_TARGETS). */
      metricsTargets?: string;
      logger: Logger;
    },
  ) {}

  async read(control: ControlStatusView) {
    const config = this.o.published();
    const scraped = await scrape(metricsTargets(this.o.metricsTargets));
    const attention: Attention[] = [...controlAttention(control)];
    const active = new Set(samplesOf(scraped, 'cityshare_reader_active').filter((s) => s.value === 1).map((s) => s.labels.source));
    const readerValue = (name: string, source: string) => samplesOf(scraped, name).find((s) => s.labels.source === source && (active.size === 0 || active.has(source)))?.value;

    const sources = [];
    for (const source of config?.sources ?? []) {
      // error events: one query and end, the connection lost in between rejects the query and the source shows no binlog end.
      const end = await createConnection(sourceConnectionOptions(source)).then(
        async (conn) => binlogEnd(conn).finally(() => void conn.end()),
        () => undefined,
      ).catch(() => undefined);
      if (!end) attention.push({ code: 'SOURCE_UNREACHABLE', what: `source ${source.name} does not answer the control service` });
      const sequence = readerValue('cityshare_reader_binlog_file_sequence', source.name);
      const position = readerValue('cityshare_reader_binlog_position_bytes', source.name);
      const savedAt = readerValue('cityshare_reader_last_commit_timestamp_seconds', source.name);
      const file = sequence !== undefined && end ? `${end.file.replace(/\.\d+$/, '')}.${String(sequence).padStart(6, '0')}` : undefined;
      if (sequence === undefined) attention.push({ code: 'SOURCE_UNREACHABLE', what: `no metrics of an active reader of ${source.name}: is it running (and listed in CONTROL_METRICS_TARGETS)?` });
      sources.push({
        source: source.name,
        checkpoint: file && position !== undefined ? { file, pos: position, gtid: null, savedAt: savedAt ? new Date(savedAt * 1000).toISOString() : '' } : null,
        binlogEnd: end ?? null,
        lagSeconds: readerValue('cityshare_reader_lag_seconds', source.name) ?? null,
        paused: readerValue('cityshare_reader_binlog_paused', source.name) === 1,
      });
    }

    const snapshots = samplesOf(scraped, 'cityshare_reader_snapshot_running').filter((s) => s.value === 1).map((s) => {
      const of = (name: string) => samplesOf(scraped, name).find((x) => x.labels.source === s.labels.source && x.labels.table === s.labels.table)?.value ?? 0;
      return { source: s.labels.source ?? '', table: s.labels.table ?? '', rows: of('cityshare_reader_snapshot_rows_total'), remaining: of('cityshare_reader_snapshot_remaining_rows'), etaSeconds: of('cityshare_reader_snapshot_eta_seconds') };
    });

    const pausedTables = [
      ...samplesOf(scraped, 'cityshare_transformer_paused_tables').filter((s) => s.value === 1).map((s) => ({ table: s.labels.table ?? '', department: s.labels.department ?? null, why: 'SCHEMA_INCOMPATIBLE' })),
      ...samplesOf(scraped, 'cityshare_sink_partitions_paused').filter((s) => s.value > 0).map((s) => ({ table: `${s.value} share partition(s)`, department: s.labels.department ?? null, why: 'SCHEMA_UNKNOWN' })),
    ];
    for (const p of pausedTables) attention.push({ code: p.why as ErrorCode, what: `${p.table}${p.department ? ` of ${p.department}` : ''} is paused` });

    const deadLetters = [
      ...samplesOf(scraped, 'cityshare_reader_dlq_total').map((s) => ({ stage: 'reader' as const, reason: s.labels.reason ?? '', count: s.value, scope: `${s.labels.source}.${s.labels.table}` })),
      ...samplesOf(scraped, 'cityshare_transformer_dlq_total').map((s) => ({ stage: 'transformer' as const, reason: s.labels.reason ?? '', count: s.value, scope: s.labels.department ?? '' })),
      ...samplesOf(scraped, 'cityshare_sink_dlq_total').map((s) => ({ stage: 'sink' as const, reason: 'TARGET_REJECTED', count: s.value, scope: `${s.labels.department} (${s.labels.target})` })),
    ].filter((d) => d.count > 0);

    const services = scraped.map(({ target, samples }) => {
      const down = (samples ?? []).filter((s) => s.name === 'cityshare_dependency_up' && s.value === 0).map((s) => s.labels.dependency ?? '');
      const service = samples?.find((s) => s.labels.service)?.labels.service ?? null;
      const named = `${service ?? target}${samples?.find((s) => s.labels.department)?.labels.department ? ` (${samples.find((s) => s.labels.department)!.labels.department})` : ''}`;
      for (const dependency of down) attention.push({ code: CODE_OF_DEPENDENCY.get(dependency) ?? 'INTERNAL', what: `${named} waits for its ${dependency}` });
      return { target, service, up: samples !== undefined, dependenciesDown: down };
    });

    const departments = config ? await this.departmentLags(config).catch((err: unknown) => {
      const coded = kafkaSecurityError(err, config.kafka);
      attention.push(isCdcError(coded) ? { code: coded.code, what: `the control service cannot read the consumer groups' offsets: ${coded.message}` } : { code: 'KAFKA_UNREACHABLE', what: "the control service cannot read the consumer groups' offsets" });
      return [];
    }) : [];
    return {
      at: new Date().toISOString(),
      pipeline: config?.kafka.topicPrefix ?? null,
      sources,
      snapshots,
      departments,
      pausedTables,
      deadLetters,
      services,
      attention: attention.map((a) => ({ ...a, action: ERROR_CODES[a.code].action })),
    };
  }

  private async departmentLags(config: PipelineConfig): Promise<DepartmentLag[]> {
    const admin = createKafka(config.kafka, 'cityshare-control-status', this.o.logger).admin();
    await admin.connect();
    try {
      return await departmentLags(admin, config);
    } finally {
      await admin.disconnect();
    }
  }
}
