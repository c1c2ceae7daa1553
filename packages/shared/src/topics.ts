/** Topic names are the contract between stages; only this file spells them. */
export const topics = {
  raw: (prefix: string, source: string, db: string, table: string) => `${prefix}.raw.${source}.${db}.${table}`,
  rawPattern: (prefix: string) => new RegExp(`^${escape(prefix)}\\.raw\\.`),
  share: (prefix: string, department: string, db: string, table: string) => `${prefix}.share.${department}.${db}.${table}`,
  sharePattern: (prefix: string, department: string) => new RegExp(`^${escape(prefix)}\\.share\\.${escape(department)}\\.`),
  dlq: (prefix: string, stage: string) => `${prefix}.dlq.${stage}`,
  checkpoints: (prefix: string) => `${prefix}.checkpoints`,
};

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
