import type { z } from 'zod';
import type { DepartmentConfig, KeyProvider, Logger, TargetSettings, TlsFileSetting } from '@cityshare/shared';
import type { SinkMetrics } from '../sink-metrics.js';
import type { TargetOutage } from './connection-faults.js';
import type { TableReadBack, Target } from './target.js';

/** What a target is built with besides its settings. */
export interface TargetContext {
  /** Its department: the name, and the grants in force. */
  department: DepartmentConfig;
  /** The pipeline's topic prefix, which names the target's Redis queues. */
  prefix: string;
  keys: KeyProvider;
  logger: Logger;
  metrics: SinkMetrics;
  /** Metric labels of this department and target. */
  labels: { department: string; target: string };
  /** Kept across the runs the service runtime restarts: an outage of the target is logged once. */
  outage?: TargetOutage;
}

/** What the sink, its tests and the CLI ask of a target instead of its kind. */
export interface TargetCapabilities<C> {
  /**
   * `table`: keeps each table's rows at the target (created on first sight, upserted by key
   * under the version guard), where they can be read back — the state policy(source) must
   * equal. `stream`: hands every change on to a receiver (an endpoint, a broker) and keeps
   * nothing to read back; what counts is what the receiver gets, in order.
   */
  delivery: 'table' | 'stream';
  /** Whether it signs what it sends with the department's key list `webhook:<department>` (which its sink's keyring then needs). */
  signs(config: C): boolean;
}

/**
 * One kind of department target, declared in one file (`<kind>.target.ts`) and listed in
 * registry.ts: the pipeline file's settings for it, what it can do, and how it is built.
 * A target file is imported wherever target settings are checked (the control plane, the
 * CLI, `npm run schemas`), not only by the sink: it loads its client library (pg, amqplib,
 * BullMQ, ioredis…) in `connect()`, never at import (eslint.config.js refuses a value import of
 * one in targets/), so checking settings costs no driver.
 */
export interface TargetDefinition<S extends z.ZodType<TargetSettings> = z.ZodType<TargetSettings>> {
  /** As pipeline files name it (`target.kind`): the literal of its settings' `kind`. */
  readonly kind: z.output<S>['kind'];
  /** Its settings in the pipeline file, `kind` included; the JSON schema and the docs come from it. */
  readonly config: S;
  readonly capabilities: TargetCapabilities<z.output<S>>;
  /** The settings naming CA, certificate or key files (resolved against the pipeline file and checked by loadPipeline). */
  tlsFiles(config: z.output<S>): TlsFileSetting[];
  create(config: z.output<S>, ctx: TargetContext): Target;
  /** A table target's department tables read back, reading only (`cdc verify`); every target of `delivery: table` has it. */
  readBack?(config: z.output<S>, ctx: { logger: Logger }): TableReadBack;
}

/** A target's settings: a zod object whose `kind` is a literal. */
type SettingsSchema = z.ZodType<TargetSettings> & { shape: { kind: z.ZodLiteral<string> } };

/** A target's definition, its kind taken from its settings (so the kind is spelled once). */
export function defineTarget<S extends SettingsSchema>(definition: Omit<TargetDefinition<S>, 'kind'>): TargetDefinition<S> {
  return { kind: definition.config.shape.kind.value, ...definition };
}
