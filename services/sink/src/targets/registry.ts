import { z } from 'zod';
import type { DepartmentConfig, PipelineTargets } from '@cityshare/shared';
import { exportDefinition } from './export.target.js';
import { httpDefinition } from './http.target.js';
import { mysqlDefinition } from './mysql.target.js';
import { postgresDefinition } from './postgres.target.js';
import { rabbitmqDefinition } from './rabbitmq.target.js';
import type { Target } from './target.js';
import type { TargetContext, TargetDefinition } from './target-definition.js';

/**
 * Every kind of department target. Each is declared in one file, `<kind>.target.ts`: its
 * settings (zod, with `kind`), its capabilities, the TLS files it names and its constructor
 * (target-definition.ts). Adding a target is writing that file and listing it here; the
 * conformance suite (test/sink-conformance.test.ts) then fails until it has a harness for it.
 *
 * Why the pipeline schema takes its targets from here rather than declaring them:
 * @cityshare/shared cannot import the sink, which imports it, so `pipelineSchemaOf` and
 * `loadPipeline` take `pipelineTargets` as a parameter (no registration by side effect). The
 * sink, the control plane (applying a catalog, publishing a policy), the CLI and `npm run
 * schemas` pass it through the workspace export `@cityshare/sink/targets` and check every
 * setting; the reader and the transformer, which deliver to no target, only check that a
 * department names one. Target files load their drivers in `connect()`, so importing this
 * costs those processes zod schemas, not pg, amqplib, BullMQ or ioredis.
 */
export const TARGETS = [postgresDefinition, mysqlDefinition, httpDefinition, rabbitmqDefinition, exportDefinition] as const;

export type TargetKind = (typeof TARGETS)[number]['kind'];
/** A department target's settings, as the pipeline file has them once checked. */
export type TargetConfig = z.output<(typeof TARGETS)[number]['config']>;

/** The settings' schemas of a list of definitions, as a tuple (what z.discriminatedUnion takes). */
type ConfigsOf<T extends readonly unknown[]> = { -readonly [I in keyof T]: T[I] extends TargetDefinition<infer S> ? S : never };

/** The pipeline file's `target`: one of the kinds above, with its settings. */
const targetConfig = z
  .discriminatedUnion('kind', TARGETS.map((t) => t.config) as ConfigsOf<typeof TARGETS>)
  .describe("the department's database, endpoint, message broker or scheduled export");

/** What `loadPipeline` and `parsePipeline` (@cityshare/shared) take to check targets in full. */
export const pipelineTargets: PipelineTargets<TargetConfig> = {
  schema: targetConfig,
  tlsFiles: (target) => definitionOf(target).tlsFiles(target),
};

/** The definition of a target's kind. */
export function definitionOf<C extends TargetConfig>(target: C): TargetDefinition<z.ZodType<C>> {
  // Found by the union's discriminant, so it is the definition of C's settings.
  return TARGETS.find((t) => t.kind === target.kind) as unknown as TargetDefinition<z.ZodType<C>>;
}

/** The department's target as its pipeline file describes it (not connected yet). */
export function createTarget(department: DepartmentConfig<TargetConfig>, ctx: Omit<TargetContext, 'department' | 'labels'>): Target {
  const labels = { department: department.name, target: department.target.kind };
  return definitionOf(department.target).create(department.target, { ...ctx, department, labels });
}
