import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CdcError, ERROR_CODES, FileKeyring, parsePipeline, checkPolicySignature, policyKeyNames, policySigningKey, signPolicy, POLICY_ISSUED_PREFIX, policyBody, policyIssuedAt, type DataKey, type Logger, type PipelineConfig } from '@cityshare/shared';
import { pipelineTargets } from '@cityshare/sink/targets';
import { pipelineText, type CatalogDocument } from './catalog.js';
import type { GrantRequest } from './grants.js';
import type { AuditLedger } from './ledger.js';

/**
 * Turns the catalog and the grants in force into the policy the pipeline runs: the
 * catalog's settings, sources, column classes, departments and targets, with each
 * department's approved, unexpired grants. The result is validated as a whole before it is
 * written (atomically) and signed with the control plane's `policy` key (policy-signature.ts);
 * the services re-read it within a second. An entry in the ledger records every published
 * version by its digest. The file on disk is compared with what was published on every
 * round: a file edited by anyone else is recorded (`policy.tampered`) and written again.
 */
export class PolicyPublisher {
  private published: string | undefined;

  /** The signed pipeline file last published (or found at start), as services on other hosts fetch it (GET /policy). */
  get text(): string | undefined {
    return this.published;
  }

  /** SHA-256 of the pipeline file last published (or found at start). */
  get digest(): string | undefined {
    return this.published === undefined ? undefined : createHash('sha256').update(this.published).digest('hex');
  }

  constructor(
    private readonly outputPath: string,
    private readonly ledger: AuditLedger,
    private readonly logger: Logger,
    /** The key that signs what is published (none: unsigned, for tests of the catalog alone). */
    private readonly signingKey?: () => DataKey,
  ) {
    if (!existsSync(outputPath)) return;
    const onDisk = readFileSync(outputPath, 'utf8');
    try {
      if (signingKey) checkPolicySignature(onDisk, outputPath, policySigningKey(signingKey()).publicKey);
      this.published = onDisk;
    } catch {
      // Edited while the control plane was down (or published unsigned by an older version): recorded on the first round.
      this.tamperedAtStart = true;
    }
  }

  private tamperedAtStart = false;

  /** Now, or just after the last issue time if this host's clock went back. */
  private nextIssueTime(): string {
    const last = this.published ? Date.parse(policyIssuedAt(this.published) ?? '') : NaN;
    return new Date(Number.isNaN(last) ? Date.now() : Math.max(Date.now(), last + 1)).toISOString();
  }

  private sign(text: string): string {
    return this.signingKey ? signPolicy(text, this.signingKey()) : text;
  }

  /** The pipeline file for this catalog and these grants (throws CONFIG_INVALID with every problem if it would not load). */
  render(doc: CatalogDocument, grants: GrantRequest[]): string {
    const body = pipelineText(doc, (department) =>
      grants
        .filter((g) => g.department === department)
        .map((g) => ({ table: g.table, columns: g.spec.columns, ...(g.spec.filter ? { filter: g.spec.filter } : {}), ...(g.spec.filterReads?.length ? { filterReads: g.spec.filterReads } : {}) })),
    );
    const text = `# Written by the cityshare control plane from its catalog and the grants in force; do not edit (cdc apply, cdc grants).\n${body}`;
    this.checkKeys(parsePipeline(text, process.env, pipelineTargets));
    return text;
  }

  /**
   * The transformer refuses a policy whose keys its keyring lacks (and keeps the old one, with
   * every later revoke): such a grant is refused here, at approval and publication. Checked
   * when the keyring the policy names is on this host (it is on the local stack).
   */
  private checkKeys(config: PipelineConfig): void {
    const file = resolve(dirname(this.outputPath), config.keyring.file);
    if (!existsSync(file)) return;
    const keys = FileKeyring.load(file);
    const missing = policyKeyNames(config).filter((name) => {
      try {
        keys.activeKey(name);
        return false;
      } catch {
        return true;
      }
    });
    if (missing.length > 0) {
      throw new CdcError('KEY_NOT_FOUND', `the policy needs key list(s) ${missing.join(', ')}, which the keyring ${file} does not hold; add them first (\`cdc keys rotate token:own:<department>\` creates a department's own token key)`, { details: { missing } });
    }
  }

  /**
   * Writes the policy if the catalog or the grants in force changed; returns whether it did.
   * A grant that no longer makes a valid policy is left out and logged, so it cannot hold
   * back every other change (revokes, expiries) of the policy. An empty catalog publishes
   * nothing.
   */
  async publish(doc: CatalogDocument, grants: GrantRequest[]): Promise<boolean> {
    if (doc.sources.length === 0) return false;
    let valid = grants;
    try {
      this.render(doc, grants);
    } catch {
      valid = grants.filter((g) => {
        try {
          this.render(doc, [g]);
          return true;
        } catch (err) {
          this.logger.error({ grant: g.id, department: g.department, table: g.table, problem: (err as Error).message }, 'grant in force does not make a valid policy with the catalog; left out');
          return false;
        }
      });
    }
    const body = this.render(doc, valid);
    const onDisk = existsSync(this.outputPath) ? readFileSync(this.outputPath, 'utf8') : undefined;
    const same = this.published !== undefined && policyBody(this.published) === policyBody(body);
    if (same && onDisk === this.published) return false;
    // A new policy is issued later than every one before it (services refuse an older one: a replay);
    // the same policy written again (the file was tampered with) keeps its issue time.
    const text = same ? this.published! : this.sign(`${body.endsWith('\n') ? body : `${body}\n`}${POLICY_ISSUED_PREFIX}${this.nextIssueTime()}\n`);
    if ((this.published !== undefined && onDisk !== this.published) || this.tamperedAtStart) await this.recordTampering(onDisk);
    this.tamperedAtStart = false;
    writeFileSync(`${this.outputPath}.tmp`, text, { mode: 0o644 });
    renameSync(`${this.outputPath}.tmp`, this.outputPath);
    this.published = text;
    const digest = createHash('sha256').update(text).digest('hex');
    await this.ledger.append({ actor: 'control-plane', role: 'system', action: 'policy.publish', subject: this.outputPath, details: { digest, grants: valid.map((g) => g.id), leftOut: grants.filter((g) => !valid.includes(g)).map((g) => g.id) } });
    this.logger.info({ grants: valid.map((g) => g.id), digest }, 'policy published');
    return true;
  }

  /** The published file was changed or removed by someone else: services refuse it (signature), the ledger and the log say so. */
  private async recordTampering(onDisk: string | undefined): Promise<void> {
    const found = onDisk === undefined ? null : createHash('sha256').update(onDisk).digest('hex');
    this.logger.error({ code: 'POLICY_SIGNATURE_INVALID', action: ERROR_CODES.POLICY_SIGNATURE_INVALID.action, path: this.outputPath, found, published: this.digest }, 'the published pipeline file was changed outside the control plane; writing the published policy again');
    await this.ledger.append({ actor: 'control-plane', role: 'system', action: 'policy.tampered', subject: this.outputPath, details: { found, published: this.digest ?? null } });
  }
}
