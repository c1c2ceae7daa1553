import { isCdcError, type Logger } from '@cityshare/shared';
import type { CatalogDocument } from './catalog.js';
import type { CatalogWorkflow } from './catalog-workflow.js';
import type { ControlMetrics } from './control-metrics.js';
import type { GrantWorkflow } from './grants.js';
import type { PolicyPublisher } from './policy-publisher.js';

/**
 * The control plane's publication round, run every CONTROL_PUBLISH_INTERVAL_MS: expiry
 * applied, then the approved catalog with the grants in force published as the signed policy
 * the services run. While the catalog's settings or targets are not the ones a security
 * officer approved last (SETTINGS_TAMPERED), nothing is published and the services keep the
 * last policy.
 */
export class Publication {
  /** Why the catalog is not published now, or undefined. */
  settingsProblem: string | undefined;

  constructor(
    private readonly catalog: CatalogWorkflow,
    private readonly grants: GrantWorkflow,
    private readonly publisher: PolicyPublisher,
    private readonly metrics: Pick<ControlMetrics, 'grantsInForce' | 'grantsRefused' | 'settingsRefused'>,
    private readonly logger: Logger,
  ) {}

  async round(): Promise<void> {
    await this.grants.expire();
    const inForce = await this.grants.inForce();
    const doc = await this.approvedCatalog();
    if (doc) await this.publisher.publish(doc, inForce);
    this.metrics.grantsInForce.set(inForce.length);
    this.metrics.grantsRefused.set(this.grants.refusedGrants.size);
  }

  /** The catalog to publish, or none while its settings or targets are not the ones approved last. */
  private async approvedCatalog(): Promise<CatalogDocument | undefined> {
    try {
      const doc = await this.catalog.approved();
      if (this.settingsProblem) this.logger.info('catalog settings and targets are the approved ones again; publishing');
      this.settingsProblem = undefined;
      this.metrics.settingsRefused.set(0);
      return doc;
    } catch (err) {
      if (!isCdcError(err, 'SETTINGS_TAMPERED')) throw err;
      if (err.message !== this.settingsProblem) this.logger.error({ code: err.code, action: err.action }, err.message);
      this.settingsProblem = err.message;
      this.metrics.settingsRefused.set(1);
      return undefined;
    }
  }
}
