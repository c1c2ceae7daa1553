import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { parse } from 'yaml';
import { describeChange, type CatalogChange } from '@cityshare/control/catalog';
import type { CatalogChangeRequest } from '@cityshare/control/catalog-changes';
import type { CatalogView as Catalog } from '@cityshare/control/catalog-workflow';
import { describeVerification, type LedgerVerification } from '@cityshare/control/ledger';
import { CdcError, FileKeyring, aclPlan, formatAclRule, keyListsOf, loadPipeline, parsePipeline, type AclRule, type KeyringHolder } from '@cityshare/shared';
import { definitionOf, pipelineTargets } from '@cityshare/sink/targets';
import { callControl, printTable, readInputFile, type ControlOptions } from './control-client.js';

interface CatalogResult { changes: CatalogChange[]; applied: boolean; pending?: { id: number }; needsApproval?: boolean }
interface Grant { id: number; department: string; table: string; spec: { columns: Record<string, unknown>; filter?: string; filterReads?: string[] }; purpose: string; expiresAt: string | null; status: string; requestedBy: string; decidedBy: string | null; reason: string | null }

/** `name=class` or `name=<YAML>` pairs (e.g. `phone={mask: phone}`) into an object. */
function pairs(list: string[], what: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of list) {
    const at = item.indexOf('=');
    if (at <= 0) throw new CdcError('CONFIG_INVALID', `--${what} ${item}: expected column=value`);
    const value = item.slice(at + 1);
    out[item.slice(0, at)] = value === 'none' ? null : /^[{[]/.test(value) ? parse(value) : value;
  }
  return out;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function printResult(r: CatalogResult, dryRun: boolean): void {
  for (const c of r.changes) process.stdout.write(`${describeChange(c)}\n`);
  if (r.changes.length === 0) process.stdout.write('no changes: the catalog already says this\n');
  else if (dryRun) process.stdout.write(`${r.changes.length} change(s); dry run, nothing applied (run again without --dry-run to apply${r.needsApproval ? '; settings and targets then wait for a security officer' : ''})\n`);
  else if (r.pending) process.stdout.write(`${r.changes.length} change(s) wait for a security officer: change ${r.pending.id} (cdc changes approve ${r.pending.id})\n`);
  else process.stdout.write(`${r.changes.length} change(s) applied; the pipeline picks them up within seconds\n`);
}

/**
 * The control plane's operations on the command line, each one call of its HTTP API
 * (`--api`, `--token`, `--ca`), human-readable by default and JSON with `--json`.
 */
export function addControlCommands(program: Command): void {
  const control = (): ControlOptions => program.opts<ControlOptions>();
  const out = (json: boolean | undefined, value: unknown, human: () => void) => (json ? process.stdout.write(`${JSON.stringify(value, null, 2)}\n`) : human());

  program
    .command('apply')
    .description('apply a pipeline file (sources, tables, column classes, departments, targets; no grants) to the catalog: shows the diff, applies it atomically, or refuses the whole file listing every problem')
    .argument('<file>', 'pipeline YAML file')
    .option('--dry-run', 'show the diff only')
    .option('--reason <text>', 'why (kept in the audit ledger)')
    .option('--json', 'print the result as JSON')
    .action(async (file: string, o: { dryRun?: boolean; reason?: string; json?: boolean }) => {
      const r = await callControl<CatalogResult>(control(), 'POST', 'catalog/apply', { pipeline: readInputFile(file, 'pipeline file'), dryRun: o.dryRun === true, ...(o.reason ? { reason: o.reason } : {}) });
      out(o.json, r, () => printResult(r, o.dryRun === true));
    });

  const sources = program.command('sources').description('sources in the catalog');
  sources
    .command('list')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const c = await callControl<Catalog>(control(), 'GET', 'catalog');
      out(o.json, c.sources.map(({ tables, ...s }) => ({ ...s, tables: tables.length })), () =>
        printTable([['source', 'host', 'tables'], ...c.sources.map((s) => [s.name, s.connection ? `${s.connection.host}:${s.connection.port}` : '-', String(s.tables.length)])]));
    });

  const tables = program.command('tables').description('source tables: register, classify, unregister, list (and `cdc snapshot` to snapshot them again)');
  tables
    .command('list')
    .description('registered tables and the class of each column, names as the catalog writes them (`${CIVIL_DB:-civil}.citizens` is civil.citizens)')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const c = await callControl<Catalog>(control(), 'GET', 'catalog');
      const list = c.sources.flatMap((s) => s.tables.map((t) => ({ source: s.name, table: t.name, appendOnly: t.appendOnly === true, columns: t.columns })));
      out(o.json, list, () => printTable([['source', 'table', 'kind', 'columns (class)'], ...list.map((t) => [t.source, t.table, t.appendOnly ? 'append-only' : 'keyed', Object.entries(t.columns).map(([k, v]) => `${k}:${v}`).join(' ')])]));
    });
  tables
    .command('register')
    .description('register a source table with the class of each column it shares (unlisted columns stay sealed)')
    .argument('<source>', 'source name')
    .argument('<table>', 'db.table on the source')
    .requiredOption('--column <name=class>', 'a column and its class (public, internal, personal, secret); repeat', collect)
    .option('--append-only', 'a table without a primary or unique key, captured as a log of inserts')
    .option('--dry-run', 'show the diff only')
    .option('--reason <text>', 'why (kept in the audit ledger)')
    .option('--json', 'print the result as JSON')
    .action(async (source: string, table: string, o: { column: string[]; appendOnly?: boolean; dryRun?: boolean; reason?: string; json?: boolean }) => {
      const r = await callControl<CatalogResult>(control(), 'POST', 'catalog/tables', { source, table, columns: pairs(o.column, 'column'), appendOnly: o.appendOnly === true, dryRun: o.dryRun === true, ...(o.reason ? { reason: o.reason } : {}) });
      out(o.json, r, () => printResult(r, o.dryRun === true));
    });
  tables
    .command('classify')
    .description('set the class of columns of a registered table (`column=none` seals it again)')
    .argument('<source>', 'source name')
    .argument('<table>', 'db.table on the source')
    .requiredOption('--column <name=class>', 'a column and its class, or none; repeat', collect)
    .option('--dry-run', 'show the diff only')
    .option('--reason <text>', 'why (kept in the audit ledger)')
    .option('--json', 'print the result as JSON')
    .action(async (source: string, table: string, o: { column: string[]; dryRun?: boolean; reason?: string; json?: boolean }) => {
      const r = await callControl<CatalogResult>(control(), 'POST', 'catalog/tables/classify', { source, table, columns: pairs(o.column, 'column'), dryRun: o.dryRun === true, ...(o.reason ? { reason: o.reason } : {}) });
      out(o.json, r, () => printResult(r, o.dryRun === true));
    });

  tables
    .command('unregister')
    .description('take a table out of the catalog: the reader stops capturing it (refused while a grant in force reads it)')
    .argument('<source>', 'source name')
    .argument('<table>', 'db.table on the source')
    .option('--dry-run', 'show the diff only')
    .option('--reason <text>', 'why (kept in the audit ledger)')
    .option('--json', 'print the result as JSON')
    .action(async (source: string, table: string, o: { dryRun?: boolean; reason?: string; json?: boolean }) => {
      const r = await callControl<CatalogResult>(control(), 'POST', 'catalog/tables/unregister', { source, table, dryRun: o.dryRun === true, ...(o.reason ? { reason: o.reason } : {}) });
      out(o.json, r, () => printResult(r, o.dryRun === true));
    });

  program
    .command('departments')
    .description('departments in the catalog')
    .command('list')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const c = await callControl<Catalog>(control(), 'GET', 'catalog');
      out(o.json, c.departments.map((d) => ({ name: d.name, target: d.target.kind })), () => printTable([['department', 'target'], ...c.departments.map((d) => [d.name, d.target.kind])]));
    });

  const changes = program.command('changes').description('changes of settings (kafka, schemaRegistry, keyring) and department targets: a DBA applies them, a security officer approves or rejects them');
  changes
    .command('list')
    .option('--status <status>', 'only changes in this status (requested, approved, rejected)')
    .option('--json', 'print as JSON')
    .action(async (o: { status?: string; json?: boolean }) => {
      const list = (await callControl<CatalogChangeRequest[]>(control(), 'GET', 'changes')).filter((c) => !o.status || c.status === o.status);
      out(o.json, list, () => printTable([['id', 'status', 'requested by', 'requested at', 'decided by', 'reason', 'changes'], ...list.map((c) => [String(c.id), c.status, c.requestedBy, c.requestedAt, c.decidedBy ?? '', c.reason ?? '', c.changes.map(describeChange).join('; ')])]));
    });
  changes
    .command('approve')
    .description('apply a requested change (as a security officer; not the one who requested it)')
    .argument('<id>', 'change id')
    .option('--reason <text>', 'why (kept in the audit ledger)')
    .option('--json', 'print as JSON')
    .action(async (id: string, o: { reason?: string; json?: boolean }) => {
      const c = await callControl<CatalogChangeRequest>(control(), 'POST', `changes/${encodeURIComponent(id)}/approve`, o.reason ? { reason: o.reason } : {});
      out(o.json, c, () => process.stdout.write(`change ${c.id} is ${c.status}; the pipeline picks it up within seconds\n`));
    });
  changes
    .command('reject')
    .description('refuse a requested change (as a security officer); it never applies')
    .argument('<id>', 'change id')
    .requiredOption('--reason <text>', 'why (kept in the audit ledger)')
    .option('--json', 'print as JSON')
    .action(async (id: string, o: { reason: string; json?: boolean }) => {
      const c = await callControl<CatalogChangeRequest>(control(), 'POST', `changes/${encodeURIComponent(id)}/reject`, { reason: o.reason });
      out(o.json, c, () => process.stdout.write(`change ${c.id} is ${c.status}\n`));
    });

  const grants = program.command('grants').description('grant workflow: a department requests, a security officer approves, rejects or revokes');
  grants
    .command('list')
    .option('--status <status>', 'only grants in this status (requested, approved, rejected, revoked, expired)')
    .option('--json', 'print as JSON')
    .action(async (o: { status?: string; json?: boolean }) => {
      const list = (await callControl<Grant[]>(control(), 'GET', 'grants')).filter((g) => !o.status || g.status === o.status);
      out(o.json, list, () => printTable([['id', 'department', 'table', 'status', 'columns', 'filter', 'expires', 'purpose'], ...list.map((g) => [String(g.id), g.department, g.table, g.status, Object.keys(g.spec.columns).join(','), g.spec.filter ?? '', g.expiresAt ?? '', g.purpose])]));
    });
  grants
    .command('request')
    .description('ask for columns of a table (as a department)')
    .requiredOption('--table <source.db.table>', 'the table')
    .requiredOption('--column <name=action>', 'a column and what you receive: pass, encrypt, tokenize, or YAML such as {mask: phone}; repeat', collect)
    .requiredOption('--purpose <text>', 'why the department needs it')
    .option('--filter <expr>', 'row filter, e.g. district == "海淀"')
    .option('--filter-reads <column>', 'a column the filter reads that the department does not receive (the officer approves it by name); repeat', collect)
    .option('--expires <iso-date>', 'when the grant lapses')
    .option('--department <name>', 'the department (defaults to the token\'s)')
    .option('--json', 'print as JSON')
    .action(async (o: { table: string; column: string[]; purpose: string; filter?: string; filterReads?: string[]; expires?: string; department?: string; json?: boolean }) => {
      const g = await callControl<Grant>(control(), 'POST', 'grants', {
        table: o.table, columns: pairs(o.column, 'column'), purpose: o.purpose,
        ...(o.filter ? { filter: o.filter } : {}), ...(o.filterReads ? { filterReads: o.filterReads } : {}), ...(o.expires ? { expiresAt: o.expires } : {}), ...(o.department ? { department: o.department } : {}),
      });
      out(o.json, g, () => process.stdout.write(`grant ${g.id} requested for ${g.department} on ${g.table}; a security officer decides\n`));
    });
  for (const action of ['approve', 'reject', 'revoke'] as const) {
    grants
      .command(action)
      .description(`${action} a grant (as a security officer)`)
      .argument('<id>', 'grant id')
      .requiredOption('--reason <text>', 'why (kept in the audit ledger)')
      .option('--json', 'print as JSON')
      .action(async (id: string, o: { reason: string; json?: boolean }) => {
        const g = await callControl<Grant>(control(), 'POST', `grants/${encodeURIComponent(id)}/${action}`, { reason: o.reason });
        out(o.json, g, () => process.stdout.write(`grant ${g.id} (${g.department}, ${g.table}) is ${g.status}\n`));
      });
  }

  const keys = program.command('keys').description('keys of the pipeline keyring (ids only; material never leaves it)');
  keys
    .command('list')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const list = await callControl<Array<{ name: string; id: string; created: string | null; active: boolean; rotatedBy: string | null }>>(control(), 'GET', 'keys');
      out(o.json, list, () => printTable([['key', 'id', 'created', 'state', 'rotated by'], ...list.map((k) => [k.name, k.id, k.created ?? '', k.active ? 'encrypts' : 'decrypts only', k.rotatedBy ?? ''])]));
    });
  keys
    .command('rotate')
    .description('append a new key to a key list (e.g. department:health); new data is encrypted with it within seconds, older keys still decrypt')
    .argument('<name>', 'key list name')
    .requiredOption('--reason <text>', 'why (kept in the audit ledger)')
    .option('--json', 'print as JSON')
    .action(async (name: string, o: { reason: string; json?: boolean }) => {
      const k = await callControl<{ id: string }>(control(), 'POST', 'keys/rotate', { name, reason: o.reason });
      out(o.json, k, () => process.stdout.write(`${name}: new key ${k.id} encrypts from now on\n`));
    });
  keys
    .command('split')
    .description("write each service's own keyring from the full one: reader, transformer, verifier, one per sink and one per department (a department's holds only its KEK); each file 0600")
    .requiredOption('-k, --keyring <file>', 'the full keyring (the pipeline file\'s keyring.file, kept by the control plane)')
    .requiredOption('--out <dir>', 'folder to write reader.json, transformer.json, verifier.json, sink-<department>.json, department-<department>.json into')
    .action((o: { keyring: string; out: string }) => {
      const { config } = loadPipeline(program.opts<{ config: string }>().config, process.env, pipelineTargets);
      const full = FileKeyring.load(o.keyring);
      const names = full.listNames();
      // A sink gets its department's webhook key only if its target signs with it.
      const files: Array<[string, KeyringHolder, string?, boolean?]> = [['reader', 'cdc-reader'], ['transformer', 'transformer'], ['verifier', 'verifier'], ...config.departments.flatMap((d): Array<[string, KeyringHolder, string, boolean?]> => [[`sink-${d.name}`, 'sink', d.name, definitionOf(d.target).capabilities.signs(d.target)], [`department-${d.name}`, 'department', d.name]])];
      mkdirSync(o.out, { recursive: true, mode: 0o700 });
      for (const [file, holder, department, targetSigns] of files) {
        const lists = keyListsOf(holder, names, department, { targetSigns });
        writeFileSync(join(o.out, `${file}.json`), `${JSON.stringify(full.subset(lists), null, 2)}\n`, { mode: 0o600 });
        process.stdout.write(`${join(o.out, `${file}.json`)}: ${lists.join(', ') || '(no keys)'}\n`);
      }
    });

  const acls = program.command('acls').description('Kafka ACLs: what each principal may do, derived from the catalog and the grants in force');
  const printRules = (rules: AclRule[], mark = '') => {
    for (const r of rules) process.stdout.write(`${mark}${formatAclRule(r)}\n`);
  };
  acls
    .command('plan')
    .description('print the ACL set a pipeline file implies (no control plane needed), for clusters whose ACLs someone else administers')
    .option('--json', 'print as JSON')
    .action((o: { json?: boolean }) => {
      // Only names matter here: no file it names is read, and a principal left to the environment still plans.
      const file = program.opts<{ config: string }>().config;
      const config = parsePipeline(readInputFile(file, 'pipeline file'), { KAFKA_USERNAME: '-', KAFKA_PASSWORD_FILE: '-', ...process.env }, pipelineTargets);
      const plan = aclPlan(config);
      out(o.json, plan, () => printRules(plan));
    });
  acls
    .command('diff')
    .description('how the cluster differs from the published policy (through the control plane)')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const r = await callControl<{ diff: { add: AclRule[]; remove: AclRule[] } }>(control(), 'GET', 'acls');
      out(o.json, r.diff, () => {
        printRules(r.diff.add, '+ ');
        printRules(r.diff.remove, '- ');
        if (r.diff.add.length + r.diff.remove.length === 0) process.stdout.write('the cluster holds exactly the planned ACLs\n');
      });
    });
  acls
    .command('apply')
    .description('bring the cluster in step with the published policy now (security officer; each change is a ledger entry)')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const d = await callControl<{ add: AclRule[]; remove: AclRule[] }>(control(), 'POST', 'acls/apply');
      out(o.json, d, () => {
        printRules(d.add, '+ ');
        printRules(d.remove, '- ');
        process.stdout.write(`${d.add.length} added, ${d.remove.length} removed\n`);
      });
    });

  const audit = program.command('audit').description('the audit ledger');
  audit
    .command('show')
    .option('--after <seq>', 'entries after this sequence number', '0')
    .option('--limit <n>', 'at most this many entries', '100')
    .option('--json', 'print as JSON')
    .action(async (o: { after: string; limit: string; json?: boolean }) => {
      const list = await callControl<Array<{ seq: number; at: string; actor: string; role: string; action: string; subject: string }>>(control(), 'GET', `audit?after=${Number(o.after)}&limit=${Number(o.limit)}`);
      out(o.json, list, () => printTable([['seq', 'at', 'actor', 'role', 'action', 'subject'], ...list.map((e) => [String(e.seq), e.at, e.actor, e.role, e.action, e.subject])]));
    });
  audit
    .command('export')
    .description('every entry as JSON lines, with its hashes, for external archiving')
    .action(async () => {
      for (let after = 0; ;) {
        const page = await callControl<Array<{ seq: number }>>(control(), 'GET', `audit?after=${after}&limit=5000`);
        for (const e of page) process.stdout.write(`${JSON.stringify(e)}\n`);
        if (page.length < 5000) break;
        after = page.at(-1)!.seq;
      }
    });
  audit
    .command('verify')
    .description('check the chain, its signed checkpoints and signed head through the API (every entry rehashed); exit 2 when tampering is found (see also audit-verify for the database directly)')
    .option('--json', 'print as JSON')
    .action(async (o: { json?: boolean }) => {
      const r = await callControl<LedgerVerification>(control(), 'GET', 'audit/verify');
      out(o.json, r, () => process.stdout.write(describeVerification(r)));
      if (r.problems.length > 0) process.exitCode = 2;
    });
}
