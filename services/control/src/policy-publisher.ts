import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { parsePipeline, type Logger } from '@cityshare/shared';
import type { GrantRequest } from './grants.js';
import type { AuditLedger } from './ledger.js';

/**
 * Turns the grants in force into the policy the pipeline runs: the operator's base file
 * (sources, column classes, departments and their targets) with each department's grants
 * replaced by its approved, unexpired grants from the catalog. The result is validated as a
 * whole before it is written (atomically); the services re-read it within a second. An
 * entry in the ledger records every published version by its digest.
 */
export class PolicyPublisher {
  private published: string | undefined;

  constructor(
    private readonly basePath: string,
    private readonly outputPath: string,
    private readonly ledger: AuditLedger,
    private readonly logger: Logger,
  ) {
    if (existsSync(outputPath)) this.published = readFileSync(outputPath, 'utf8');
  }

  /** The pipeline file for these grants (throws CONFIG_INVALID with every problem if it would not load). */
  render(grants: GrantRequest[]): string {
    const base = parse(readFileSync(this.basePath, 'utf8')) as { departments?: Array<{ name: string; grants?: unknown[] }> };
    for (const dept of base.departments ?? []) {
      dept.grants = grants
        .filter((g) => g.department === dept.name)
        .map((g) => ({ table: g.table, columns: g.spec.columns, ...(g.spec.filter ? { filter: g.spec.filter } : {}) }));
    }
    const text = `# Written by the cityshare control plane from ${this.basePath} and the grants in force; do not edit.\n${stringify(base)}`;
    parsePipeline(text);
    return text;
  }

  /**
   * Writes the policy if the grants in force changed; returns whether it did. A grant that
   * no longer makes a valid policy (the base file changed under it, e.g. a column lost its
   * class) is left out and logged, so it cannot hold back every other change (revokes,
   * expiries) of the policy.
   */
  async publish(grants: GrantRequest[]): Promise<boolean> {
    let valid = grants;
    try {
      this.render(grants);
    } catch {
      valid = grants.filter((g) => {
        try {
          this.render([g]);
          return true;
        } catch (err) {
          this.logger.error({ grant: g.id, department: g.department, table: g.table, problem: (err as Error).message }, 'grant in force does not make a valid policy with the base file; left out');
          return false;
        }
      });
    }
    const text = this.render(valid);
    if (text === this.published) return false;
    writeFileSync(`${this.outputPath}.tmp`, text);
    renameSync(`${this.outputPath}.tmp`, this.outputPath);
    this.published = text;
    const digest = createHash('sha256').update(text).digest('hex');
    await this.ledger.append({ actor: 'control-plane', role: 'system', action: 'policy.publish', subject: this.outputPath, details: { digest, grants: valid.map((g) => g.id), leftOut: grants.filter((g) => !valid.includes(g)).map((g) => g.id) } });
    this.logger.info({ grants: valid.map((g) => g.id), digest }, 'policy published');
    return true;
  }
}
