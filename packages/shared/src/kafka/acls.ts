import kafkajs, { type AclEntry, type Admin } from 'kafkajs';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { pipelineTopics, topics } from '../topics.js';

// kafkajs builds its exports in a way Node's CommonJS named-export detection does not see past `logLevel`.
const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
type AclOperationTypes = kafkajs.AclOperationTypes;
type AclResourceTypes = kafkajs.AclResourceTypes;
type ResourcePatternTypes = kafkajs.ResourcePatternTypes;

type Operation = 'read' | 'write' | 'create' | 'describe' | 'delete' | 'alter';
type ResourceType = 'topic' | 'group' | 'transactional-id' | 'cluster';

/** One allowed operation of one principal on a resource (a name, or every name with a prefix). */
export interface AclRule {
  principal: string;
  resourceType: ResourceType;
  /** The resource's name, or its prefix when `pattern` is prefixed. */
  name: string;
  pattern: 'literal' | 'prefixed';
  operation: Operation;
}

/** A department's own consumer groups start with this (the only groups its principal may use). */
export function departmentGroupPrefix(prefix: string, department: string): string {
  return `${prefix}.department.${department}.`;
}

/** Every principal of a pipeline, by role, as the ACLs name them. */
export function kafkaPrincipals(config: Pick<PipelineConfig, 'kafka' | 'sources' | 'departments'>): {
  readers: Map<string, string>;
  transformer: string;
  sinks: Map<string, string>;
  departments: Map<string, string>;
  control: string;
  verifier: string;
} {
  const p = config.kafka.principals;
  return {
    readers: new Map(config.sources.map((s) => [s.name, p.reader.replaceAll('{source}', s.name)])),
    transformer: p.transformer,
    sinks: new Map(config.departments.map((d) => [d.name, p.sink.replaceAll('{department}', d.name)])),
    departments: new Map(config.departments.map((d) => [d.name, p.department.replaceAll('{department}', d.name)])),
    control: p.control,
    verifier: p.verifier,
  };
}

/**
 * The ACLs a catalog implies: each principal may do what its role needs and nothing else.
 * Readers write their source's raw topics and checkpoints; the transformer reads raw topics
 * and writes share topics and dead letters in its transactions; the sink of a department
 * reads that department's share topics; a department's own principal reads the share topics
 * of its grants in force, literally, so approving a grant adds one and revoking removes it.
 * No principal but a reader writes raw or checkpoint topics.
 */
export function aclPlan(config: Pick<PipelineConfig, 'kafka' | 'sources' | 'departments'>): AclRule[] {
  const prefix = config.kafka.topicPrefix;
  const who = kafkaPrincipals(config);
  const rules: AclRule[] = [];
  const allow = (principal: string, resourceType: ResourceType, name: string, pattern: AclRule['pattern'], ...operations: Operation[]) => {
    for (const operation of operations) rules.push({ principal, resourceType, name, pattern, operation });
  };
  const topic = (principal: string, name: string, ...operations: Operation[]) => allow(principal, 'topic', name, 'literal', ...operations);
  const loaderGroups = `${topics.checkpoints(prefix)}.loader.`;

  for (const source of config.sources) {
    const reader = who.readers.get(source.name)!;
    allow(reader, 'topic', `${prefix}.raw.${source.name}.`, 'prefixed', 'write', 'describe', 'create');
    topic(reader, topics.checkpoints(prefix), 'read', 'write', 'describe', 'create');
    allow(reader, 'group', loaderGroups, 'prefixed', 'read', 'delete');
    topic(reader, topics.tableSchemas(prefix), 'write', 'describe', 'create');
    topic(reader, topics.signals(prefix), 'read', 'describe', 'create');
    allow(reader, 'group', `${prefix}.reader.${source.name}.signals`, 'literal', 'read');
    topic(reader, topics.heartbeats(prefix), 'write', 'describe', 'create');
    topic(reader, topics.transactions(prefix, source.name), 'write', 'describe', 'create');
    topic(reader, topics.schemaChanges(prefix, source.name), 'write', 'describe', 'create');
    topic(reader, topics.dlq(prefix, `reader.${source.name}`), 'write', 'describe', 'create');
  }

  const transformer = who.transformer;
  // Create (not write): a transformer started before the reader makes the raw topics it subscribes to.
  allow(transformer, 'topic', `${prefix}.raw.`, 'prefixed', 'read', 'describe', 'create');
  topic(transformer, topics.tableSchemas(prefix), 'read', 'describe', 'create');
  allow(transformer, 'topic', `${prefix}.share.`, 'prefixed', 'write', 'describe', 'create');
  topic(transformer, topics.dlq(prefix, 'transformer'), 'write', 'describe', 'create');
  allow(transformer, 'group', `${prefix}.transformer.`, 'prefixed', 'read', 'describe');
  allow(transformer, 'transactional-id', `${prefix}.transformer.`, 'prefixed', 'write', 'describe');

  const share = pipelineTopics(config).share;
  for (const department of config.departments) {
    const sink = who.sinks.get(department.name)!;
    allow(sink, 'topic', `${prefix}.share.${department.name}.`, 'prefixed', 'read', 'describe', 'create');
    allow(sink, 'group', `${prefix}.sink.${department.name}`, 'literal', 'read', 'describe');
    topic(sink, topics.dlq(prefix, `sink.${department.name}`), 'write', 'describe', 'create');
    topic(sink, topics.deliveries(prefix), 'write', 'describe', 'create');

    const own = who.departments.get(department.name)!;
    for (const shareTopic of share.get(department.name) ?? []) topic(own, shareTopic, 'read', 'describe');
    allow(own, 'group', departmentGroupPrefix(prefix, department.name), 'prefixed', 'read', 'describe');
  }

  const control = who.control;
  topic(control, topics.deliveries(prefix), 'read', 'describe', 'create');
  allow(control, 'group', `${prefix}.control.deliveries`, 'literal', 'read');
  topic(control, topics.signals(prefix), 'write', 'describe', 'create');
  topic(control, topics.checkpoints(prefix), 'read');
  allow(control, 'group', loaderGroups, 'prefixed', 'read', 'delete');
  // `cdc status`: offsets and committed positions of every stage.
  allow(control, 'topic', `${prefix}.`, 'prefixed', 'describe');
  allow(control, 'group', `${prefix}.`, 'prefixed', 'describe');
  // Keeping the ACLs in step is an administrative right; the cluster's administrator grants it once.
  allow(control, 'cluster', 'kafka-cluster', 'literal', 'alter', 'describe');

  // The verifier: where each stage stands (checkpoints, end and committed offsets), and repair signals to the readers.
  const verifier = who.verifier;
  topic(verifier, topics.checkpoints(prefix), 'read', 'describe');
  allow(verifier, 'group', loaderGroups, 'prefixed', 'read', 'delete');
  allow(verifier, 'topic', `${prefix}.`, 'prefixed', 'describe');
  allow(verifier, 'group', `${prefix}.`, 'prefixed', 'describe');
  topic(verifier, topics.signals(prefix), 'write', 'describe', 'create');
  return dedupe(rules);
}

function dedupe(rules: AclRule[]): AclRule[] {
  const seen = new Map(rules.map((r) => [ruleKey(r), r]));
  return [...seen.values()];
}

export function ruleKey(r: AclRule): string {
  return `${r.principal}|${r.resourceType}|${r.pattern}|${r.name}|${r.operation}`;
}

/** The rules a pipeline's ACL management owns: those on its own prefix's resources (cluster rules are only ever added). */
function owned(rule: AclRule, prefix: string): boolean {
  return rule.resourceType !== 'cluster' && rule.name.startsWith(`${prefix}.`);
}

const RESOURCE: Record<ResourceType, AclResourceTypes> = {
  topic: AclResourceTypes.TOPIC,
  group: AclResourceTypes.GROUP,
  'transactional-id': AclResourceTypes.TRANSACTIONAL_ID,
  cluster: AclResourceTypes.CLUSTER,
};
const OPERATION: Record<Operation, AclOperationTypes> = {
  read: AclOperationTypes.READ,
  write: AclOperationTypes.WRITE,
  create: AclOperationTypes.CREATE,
  describe: AclOperationTypes.DESCRIBE,
  delete: AclOperationTypes.DELETE,
  alter: AclOperationTypes.ALTER,
};
const PATTERN = { literal: ResourcePatternTypes.LITERAL, prefixed: ResourcePatternTypes.PREFIXED } as const;

function toEntry(r: AclRule): AclEntry {
  return {
    principal: r.principal,
    host: '*',
    resourceType: RESOURCE[r.resourceType],
    resourceName: r.name,
    resourcePatternType: PATTERN[r.pattern],
    operation: OPERATION[r.operation],
    permissionType: AclPermissionTypes.ALLOW,
  };
}

function invert<K extends string, V>(record: Record<K, V>): Map<V, K> {
  return new Map(Object.entries(record).map(([k, v]) => [v as V, k as K]));
}
const RESOURCE_NAME = invert(RESOURCE);
const OPERATION_NAME = invert(OPERATION);
const PATTERN_NAME = invert(PATTERN);

/** The ALLOW rules the cluster holds now, in the plan's terms (others are not ours to manage). */
export async function currentAcls(admin: Admin): Promise<AclRule[]> {
  const described = await admin.describeAcls({
    resourceType: AclResourceTypes.ANY,
    resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY,
    permissionType: AclPermissionTypes.ANY,
  });
  const rules: AclRule[] = [];
  for (const resource of described.resources) {
    const resourceType = RESOURCE_NAME.get(resource.resourceType);
    const pattern = (PATTERN_NAME as Map<ResourcePatternTypes, 'literal' | 'prefixed'>).get(resource.resourcePatternType);
    if (!resourceType || !pattern) continue;
    for (const acl of resource.acls) {
      const operation = OPERATION_NAME.get(acl.operation);
      if (!operation || acl.permissionType !== AclPermissionTypes.ALLOW || acl.host !== '*') continue;
      rules.push({ principal: acl.principal, resourceType, name: resource.resourceName, pattern, operation });
    }
  }
  return rules;
}

export interface AclDiff {
  add: AclRule[];
  remove: AclRule[];
}

/** What to add and remove so the cluster holds exactly the plan on the pipeline's own resources. */
export function diffAcls(plan: AclRule[], current: AclRule[], prefix: string): AclDiff {
  const planned = new Set(plan.map(ruleKey));
  const held = new Set(current.map(ruleKey));
  return {
    add: plan.filter((r) => !held.has(ruleKey(r))),
    remove: current.filter((r) => owned(r, prefix) && !planned.has(ruleKey(r))),
  };
}

/** Applies a diff: removals first, so a revoked read stops before anything else happens. */
export async function applyAclDiff(admin: Admin, diff: AclDiff): Promise<void> {
  if (diff.remove.length > 0) {
    const filters = diff.remove.map(toEntry);
    await admin.deleteAcls({ filters });
  }
  if (diff.add.length > 0) await admin.createAcls({ acl: diff.add.map(toEntry) });
}

/** One line per rule, for people: `User:sink-health  read  topic demo.share.health.* `. */
export function formatAclRule(r: AclRule): string {
  return `${r.principal}  ${r.operation}  ${r.resourceType} ${r.name}${r.pattern === 'prefixed' ? '*' : ''}`;
}
