import { z } from 'zod';

/**
 * The department targets a pipeline file may name, as the pipeline schema takes them. The sink
 * owns the targets (services/sink/src/targets/registry.ts, one `<kind>.target.ts` each), and this
 * package cannot import the sink, which imports it: so the schema takes its targets as a
 * parameter. The sink, the control plane and the CLI pass the registry's
 * (`@cityshare/sink/targets`), which checks every setting; without it (`anyTarget`: the reader, the
 * transformer, which deliver to no target) a target is only required to name its kind.
 */
export interface PipelineTargets<T extends TargetSettings = TargetSettings> {
  /** The settings of a department's `target`: a union discriminated by `kind`. */
  schema: z.ZodType<T>;
  /** The CA, certificate and key files a target's settings name, which loadPipeline resolves against the pipeline file and checks. */
  tlsFiles(target: T): TlsFileSetting[];
}

/** What every target's settings have. */
export interface TargetSettings {
  kind: string;
}

/** A setting of a target holding TLS files: where it is under `target` ('' for the target itself) and the files. */
export interface TlsFileSetting {
  at: string;
  files: { ca?: string | undefined; cert?: string | undefined; key?: string | undefined } | undefined;
}

const someTarget = z
  .looseObject({ kind: z.string().min(1) })
  .describe("the department's target: its kind and the settings of that kind, checked in full by the sink and the control plane");

export type AnyTarget = z.output<typeof someTarget>;

/** Targets as a service that delivers to none sees them: a kind, and settings it leaves alone. */
export const anyTarget: PipelineTargets<AnyTarget> = { schema: someTarget, tlsFiles: () => [] };
