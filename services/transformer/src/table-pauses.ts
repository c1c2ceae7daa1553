import type { Consumer } from 'kafkajs';
import { isCdcError, type CdcError, type Logger, type TableSchema } from '@cityshare/shared';
import type { DepartmentView } from './department-views.js';
import type { SchemaRegistrar } from './schema-registrar.js';
import type { TransformerMetrics } from './transformer-metrics.js';

/** Thrown by the transform step when a department's new contract is refused by the registry. */
export class IncompatibleView extends Error {
  constructor(
    readonly department: string,
    readonly tableRef: string,
    readonly shareTopic: string,
    readonly schema: TableSchema,
    override readonly cause: CdcError,
  ) {
    super(cause.message);
  }
}

interface Pause {
  rawTopic: string;
  view: IncompatibleView;
  since: number;
}

/**
 * An incompatible schema change never mis-encodes a record and never skips one: the raw
 * topic of that table stops being consumed (the batch is not committed and is read again),
 * an alert goes up (`cityshare_transformer_paused_tables`), and every `retryMs` the
 * registration is tried again with the grants in force; once the registry accepts it
 * (compatibility changed by the schema owner, or the grant changed), the table resumes
 * where it stopped. Other tables go on. Every department of the paused table waits,
 * because they share the raw topic's offsets.
 */
export class TablePauses {
  private readonly paused = new Map<string, Pause>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly consumer: () => Consumer,
    private readonly registrar: SchemaRegistrar,
    private readonly viewsOf: (tableRef: string) => DepartmentView[],
    private readonly metrics: TransformerMetrics,
    private readonly logger: Logger,
    private readonly retryMs = 10_000,
  ) {}

  isPaused(rawTopic: string): boolean {
    return this.paused.has(rawTopic);
  }

  /** Stops the raw topic and rewinds the partition to the first offset of the refused batch. */
  pause(rawTopic: string, partition: number, firstOffset: string, view: IncompatibleView): void {
    this.consumer().pause([{ topic: rawTopic }]);
    this.consumer().seek({ topic: rawTopic, partition, offset: firstOffset });
    if (this.paused.has(rawTopic)) return;
    this.paused.set(rawTopic, { rawTopic, view, since: Date.now() });
    this.metrics.pausedTables.set({ table: view.tableRef, department: view.department }, 1);
    this.logger.error(
      { code: view.cause.code, action: view.cause.action, table: view.tableRef, department: view.department, topic: view.shareTopic },
      `table paused: ${view.cause.message}`,
    );
    this.timer ??= setInterval(() => void this.retry(), this.retryMs);
  }

  /** Tries every paused table again (also called when the policy changes). */
  async retry(): Promise<void> {
    for (const [rawTopic, pause] of this.paused) {
      const { view } = pause;
      const current = this.viewsOf(view.tableRef).find((v) => v.department === view.department);
      try {
        // No grant any more: nothing to register; otherwise the contract with today's grant.
        if (current) await this.registrar.schemaId(view.shareTopic, current, view.schema);
      } catch (err) {
        if (isCdcError(err, 'SCHEMA_INCOMPATIBLE')) continue;
        this.logger.warn({ err: (err as Error).message, table: view.tableRef }, 'retrying a paused table failed; will try again');
        continue;
      }
      this.paused.delete(rawTopic);
      this.metrics.pausedTables.set({ table: view.tableRef, department: view.department }, 0);
      this.consumer().resume([{ topic: rawTopic }]);
      this.logger.info({ table: view.tableRef, department: view.department, pausedSeconds: Math.round((Date.now() - pause.since) / 1000) }, 'table resumed');
    }
    if (this.paused.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
