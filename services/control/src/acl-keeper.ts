import { CdcError, isCdcError, aclPlan, applyAclDiff, createKafka, currentAcls, diffAcls, kafkaSecurityError, type AclDiff, type AclRule, type Logger, type PipelineConfig } from '@cityshare/shared';
import type { AuditLedger } from './ledger.js';
import { authorize, type Principal } from './roles.js';

/**
 * Keeps the Kafka ACLs in step with the published policy: every principal gets what its role
 * needs (aclPlan), a department's own principal reads the share topics of its grants in force
 * and nothing else. Applied right after each publication, so a revoked or expired grant's
 * read ACL is gone within a second or two; every change is a ledger entry. Removals go
 * first. A cluster that could not be reached is tried again at the next call.
 */
export class AclKeeper {
  private appliedFor: string | undefined;
  /** The problem of the last round of `keepInStep`, logged once while it lasts. */
  private problem: string | undefined;

  constructor(
    private readonly ledger: AuditLedger,
    private readonly logger: Logger,
    /** The published policy (undefined before the first publication). */
    private readonly policy: () => PipelineConfig | undefined,
  ) {}

  /** `GET /acls`: the plan of the published policy and how the cluster differs from it. */
  async show(who: Principal): Promise<{ plan: AclRule[]; diff: AclDiff }> {
    await authorize(this.ledger, who, 'acl.show', 'kafka-acls');
    return this.diff(this.published());
  }

  /** `POST /acls/apply`: brings the cluster in step now, whatever was applied before. */
  async apply(who: Principal): Promise<AclDiff> {
    await authorize(this.ledger, who, 'acl.apply', 'kafka-acls');
    return this.sync(this.published(), { actor: who.name, role: who.role, force: true });
  }

  private published(): PipelineConfig {
    const config = this.policy();
    if (!config) throw new CdcError('CONFIG_NOT_FOUND', 'no policy has been published yet: register a source first (cdc apply)');
    return config;
  }

  /** What the cluster lacks and holds beyond the plan, without changing anything. */
  async diff(config: PipelineConfig): Promise<{ plan: AclRule[]; diff: AclDiff }> {
    const plan = aclPlan(config);
    return this.withAdmin(config, async (admin) => ({ plan, diff: diffAcls(plan, await currentAcls(admin), config.kafka.topicPrefix) }));
  }

  /**
   * Makes the cluster's ACLs on the pipeline's resources exactly the plan of `config`.
   * `digest` names the policy: the same policy is not applied twice unless `force`.
   */
  async sync(config: PipelineConfig, o: { digest?: string; actor?: string; role?: string; force?: boolean } = {}): Promise<AclDiff> {
    if (!o.force && o.digest !== undefined && o.digest === this.appliedFor) return { add: [], remove: [] };
    const plan = aclPlan(config);
    const diff = await this.withAdmin(config, async (admin) => {
      const d = diffAcls(plan, await currentAcls(admin), config.kafka.topicPrefix);
      await applyAclDiff(admin, d);
      return d;
    });
    for (const [action, rules] of [['kafka.acl.remove', diff.remove], ['kafka.acl.add', diff.add]] as const) {
      for (const rule of rules) {
        await this.ledger.append({ actor: o.actor ?? 'control-plane', role: o.role ?? 'system', action, subject: rule.principal, details: { ...rule } });
      }
    }
    if (diff.add.length + diff.remove.length > 0) this.logger.info({ added: diff.add.length, removed: diff.remove.length }, 'Kafka ACLs brought in step with the policy');
    this.appliedFor = o.digest;
    return diff;
  }

  /**
   * One round of the loop that follows each published policy (in a loop of its own, so an
   * unreachable cluster never holds back publication): a failure is logged once while it
   * lasts, and tried again next round.
   */
  async keepInStep(config: PipelineConfig | undefined, digest: string | undefined): Promise<void> {
    try {
      if (config) await this.sync(config, { ...(digest !== undefined ? { digest } : {}) });
      if (this.problem) this.logger.info('Kafka ACLs in step again');
      this.problem = undefined;
    } catch (err) {
      const problem = isCdcError(err) ? `${err.code}: ${err.message}` : String(err);
      if (problem !== this.problem) this.logger.error(isCdcError(err) ? { code: err.code, action: err.action } : { err }, `Kafka ACLs not in step with the policy; will retry: ${problem}`);
      this.problem = problem;
    }
  }

  private async withAdmin<T>(config: PipelineConfig, work: (admin: ReturnType<ReturnType<typeof createKafka>['admin']>) => Promise<T>): Promise<T> {
    const admin = createKafka(config.kafka, 'cityshare-control-acls', this.logger).admin();
    try {
      await admin.connect();
      return await work(admin);
    } catch (err) {
      throw kafkaSecurityError(err, config.kafka, 'the cluster ACLs');
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
}
