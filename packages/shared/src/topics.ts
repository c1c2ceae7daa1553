/** Topic names are the contract between stages; only this file spells them. */
export const topics = {
  raw: (prefix: string, source: string, db: string, table: string) => `${prefix}.raw.${source}.${db}.${table}`,
  /** One per department and granted source table: the source is part of it, so two sources' same `db.table` never meet. */
  share: (prefix: string, department: string, source: string, db: string, table: string) => `${prefix}.share.${department}.${source}.${db}.${table}`,
  dlq: (prefix: string, stage: string) => `${prefix}.dlq.${stage}`,
  checkpoints: (prefix: string) => `${prefix}.checkpoints`,
  signals: (prefix: string) => `${prefix}.signals`,
  heartbeats: (prefix: string) => `${prefix}.heartbeats`,
  tableSchemas: (prefix: string) => `${prefix}.table-schemas`,
  transactions: (prefix: string, source: string) => `${prefix}.transactions.${source}`,
  schemaChanges: (prefix: string, source: string) => `${prefix}.schema-changes.${source}`,
  /** One record per batch a sink delivered (counts, positions, digest; no values), for the audit ledger. */
  deliveries: (prefix: string) => `${prefix}.audit.deliveries`,
};

/** What a topic of the pipeline is for: one of the names above. */
export type TopicRole = keyof typeof topics;

/**
 * How each topic is laid out when the pipeline creates it: data topics `partitioned` (the
 * configured partitions, placed by key), ordered logs `single` (one total order), state
 * `compacted` (the newest record per key). Checkpoints stay a minute before compaction may
 * drop older ones, for inspection.
 */
export const TOPIC_LAYOUT: Record<TopicRole, { kind: 'partitioned' | 'single' | 'compacted'; config?: Array<{ name: string; value: string }> }> = {
  raw: { kind: 'partitioned' },
  share: { kind: 'partitioned' },
  dlq: { kind: 'single' },
  checkpoints: { kind: 'compacted', config: [{ name: 'min.compaction.lag.ms', value: '60000' }] },
  signals: { kind: 'single' },
  heartbeats: { kind: 'compacted' },
  tableSchemas: { kind: 'compacted' },
  transactions: { kind: 'single' },
  schemaChanges: { kind: 'single' },
  deliveries: { kind: 'single' },
};

/**
 * Department, source, db and table of a share topic, read from its end (the prefix may hold
 * dots; department and source names and MySQL identifiers as the pipeline file allows them do not).
 */
export function parseShareTopic(topic: string): { department: string; source: string; db: string; table: string } | null {
  const parts = topic.split('.');
  const share = parts.length - 5;
  if (share < 1 || parts[share] !== 'share') return null;
  const [department, source, db, table] = parts.slice(share + 1) as [string, string, string, string];
  return { department, source, db, table };
}

/** A sink's report of one delivered batch; the control plane writes it to the audit ledger. */
export interface DeliveryRecord {
  department: string;
  /** The department's target table. */
  table: string;
  topic: string;
  partition: number;
  firstOffset: string;
  lastOffset: string;
  rows: number;
  /** Rows the target applied; the rest were older than what it had (version guard) or dead-lettered. */
  applied: number;
  /** Source positions (`version`) of the first and last change in the batch. */
  fromVersion: string;
  toVersion: string;
  /** SHA-256 over the delivered records' bytes as the share topic held them (masked, tokenized, encrypted). */
  sha256: string;
  deliveredAt: string;
}

/** BullMQ queue names (Redis), spelled here for the same reason. */
export const queues = {
  webhook: (prefix: string, department: string) => `cityshare-${prefix}-webhook-${department}`,
  export: (prefix: string, department: string) => `cityshare-${prefix}-export-${department}`,
};

/** The raw and share topics a pipeline file implies, for subscribing by name. */
export function pipelineTopics(config: {
  kafka: { topicPrefix: string };
  sources: Array<{ name: string; tables: Array<{ name: string }> }>;
  departments: Array<{ name: string; grants: Array<{ table: string }> }>;
}): { raw: string[]; share: Map<string, string[]> } {
  const prefix = config.kafka.topicPrefix;
  const raw = config.sources.flatMap((s) => s.tables.map((t) => {
    const [db, table] = t.name.split('.') as [string, string];
    return topics.raw(prefix, s.name, db, table);
  }));
  const share = new Map(config.departments.map((d) => [d.name, d.grants.map((g) => {
    const [source, db, table] = g.table.split('.') as [string, string, string];
    return topics.share(prefix, d.name, source, db, table);
  })]));
  return { raw, share };
}
