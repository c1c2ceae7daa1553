import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { signalRecord } from '@cityshare/cdc-reader/signal-listener';
import { CdcError, FileKeyring, createKafka, createLogger, kafkaSecurityError, loadPipeline, producerConfig, type CanonicalValue } from '@cityshare/shared';
import { pipelineTargets } from '@cityshare/sink/targets';
import { sourceDigests, verifyDepartment, type VerifyReport } from '@cityshare/verifier/verify';
import { callControl, printTable, readInputFile, type ControlOptions } from './control-client.js';

/** Exit code of a verification that found differences (docs/control-plane.md, "CLI exit codes"). */
export const EXIT_DIFFERENT = 6;

/** Keys a repair signal carries at most; a longer list goes in several signals. */
const KEYS_PER_SIGNAL = 5_000;

/**
 * `cdc verify` and `cdc repair`: what a department holds against policy(source), and its
 * divergent rows delivered again through the pipeline. Both read the pipeline file (`-c`),
 * reach the source, the department's target and Kafka with its settings, and use its keyring
 * (the verifier's: token keys, the department's key, the pipeline key). Each run is recorded
 * in the audit ledger through the control API when a token is given.
 */
export function addVerifyCommands(program: Command): void {
  const control = (): ControlOptions => program.opts<ControlOptions>();
  const pipeline = () => loadPipeline(program.opts<{ config: string }>().config, process.env, pipelineTargets);
  const logger = createLogger('cdc', 'warn');

  program
    .command('verify')
    .description("compare what a department holds with policy(source) — its grant's filter, masks, tokens and encryption applied to the source — table by table, on a live source without locks; exit 0 equal, 6 differences found, 1 not settled (rows kept changing: run again)")
    .argument('<department>', 'the department')
    .argument('[tables...]', 'its grants to verify, as source.db.table or db.table (all when none)')
    .option('--json', 'the report as JSON')
    .option('-o, --out <file>', 'also write the report as JSON (for `cdc repair --from-verify`)')
    .option('--digests <file>', "write policy(source)'s digests per bucket instead, for a department that compares on its own side (HTTP, RabbitMQ, Kafka read directly; docs/verify.md)")
    .option('--settle <seconds>', 'how long to wait for the department to catch up with the source', '60')
    .action(async (department: string, tables: string[], options: { json?: boolean; out?: string; digests?: string; settle: string }) => {
      const { config, keyringPath } = pipeline();
      const keys = FileKeyring.load(keyringPath);
      if (options.digests) {
        const file = await sourceDigests({ config, keys, department, tables, logger });
        writeFileSync(options.digests, `${JSON.stringify(file, null, 2)}\n`);
        process.stdout.write(`digests of policy(source) for ${department}: ${file.tables.map((t) => `${t.table} (${t.rows} rows)`).join(', ')} written to ${options.digests}\n`);
        return;
      }
      const report = await verifyDepartment({ config, keys, department, tables, logger, settleMs: Number(options.settle) * 1000 });
      if (options.out) writeFileSync(options.out, `${JSON.stringify(report, null, 2)}\n`);
      if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printReport(report);
      await record(control(), 'POST', '/verify/runs', summary(report));
      const different = report.tables.some((t) => t.status === 'different');
      process.exitCode = different ? EXIT_DIFFERENT : report.tables.some((t) => t.status === 'unsettled') ? 1 : 0;
    });

  program
    .command('repair')
    .description("deliver a department's divergent rows again through the pipeline (to that department only; rows the source no longer has are deleted there): a dry run shows what it would do, --apply does it")
    .argument('<department>', 'the department')
    .argument('[tables...]', 'its grants to repair (all when none)')
    .option('--from-verify <report>', 'the keys of a report `cdc verify --out` wrote, instead of verifying now')
    .option('--apply', 'send the repair to the reader (signed with the pipeline key); without it, nothing is sent')
    .action(async (department: string, tables: string[], options: { fromVerify?: string; apply?: boolean }) => {
      const { config, keyringPath } = pipeline();
      const keys = FileKeyring.load(keyringPath);
      const report = options.fromVerify
        ? (JSON.parse(readInputFile(options.fromVerify, 'verify report')) as VerifyReport)
        : await verifyDepartment({ config, keys, department, tables, logger });
      if (report.department !== department) throw new CdcError('CONFIG_INVALID', `${options.fromVerify} is a report of ${report.department}, not of ${department}`);
      const work = report.tables.filter((t) => (!tables.length || tables.some((n) => t.table === n || t.table.endsWith(`.${n}`))) && t.repair.keys.length + t.repair.deletes.length + t.repair.shareKeys.length > 0);
      printTable([['table', 'deliver again', 'delete at the department'], ...work.map((t) => [t.table, String(t.repair.keys.length), String(t.repair.deletes.length + t.repair.shareKeys.length)])]);
      if (work.length === 0) {
        process.stdout.write(`nothing to repair: ${department} holds policy(source)\n`);
        return;
      }
      if (!options.apply) {
        process.stdout.write('dry run: nothing sent (run again with --apply)\n');
        return;
      }
      const request = `repair-${department}-${Date.now().toString(36)}`;
      const kafka = createKafka(config.kafka, 'cityshare-cli', logger);
      const producer = kafka.producer(producerConfig({ retry: { retries: 5 } }));
      let topic = '';
      try {
        await producer.connect();
        for (const t of work) {
          const [source, db, table] = t.table.split('.') as [string, string, string];
          for (const part of slices(t.repair)) {
            const signal = signalRecord(keys, config.kafka.topicPrefix, { action: 'repair', source, table: `${db}.${table}`, department, request, ...part, requestedBy: process.env.USER ?? 'cli' });
            topic = signal.topic;
            await producer.send({ topic: signal.topic, acks: -1, messages: [signal.message] });
          }
        }
      } catch (err) {
        throw kafkaSecurityError(err, config.kafka, topic);
      } finally {
        await producer.disconnect();
      }
      await record(control(), 'POST', '/repairs', { department, request, fromVerify: report.sha256, tables: work.map((t) => ({ table: t.table, deliver: t.repair.keys.length, delete: t.repair.deletes.length + t.repair.shareKeys.length })) });
      process.stdout.write(`repair ${request} sent to the readers; run \`cdc verify ${department}\` in a few seconds to see it done\n`);
    });
}

/** A table's repair in signals of at most KEYS_PER_SIGNAL keys each. */
type SourceKey = Record<string, CanonicalValue>;
function* slices(repair: { keys: SourceKey[]; deletes: SourceKey[]; shareKeys: string[] }): Generator<{ keys: SourceKey[]; deletes: SourceKey[]; shareKeys: string[] }> {
  const all = [...repair.keys.map((k) => ['keys', k] as const), ...repair.deletes.map((k) => ['deletes', k] as const), ...repair.shareKeys.map((k) => ['shareKeys', k] as const)];
  for (let i = 0; i < all.length; i += KEYS_PER_SIGNAL) {
    const part = all.slice(i, i + KEYS_PER_SIGNAL);
    yield {
      keys: part.filter(([kind]) => kind === 'keys').map(([, k]) => k as SourceKey),
      deletes: part.filter(([kind]) => kind === 'deletes').map(([, k]) => k as SourceKey),
      shareKeys: part.filter(([kind]) => kind === 'shareKeys').map(([, k]) => k as string),
    };
  }
}

/** What the audit ledger keeps of a run: counts and the report's digest, keys only by that digest. */
function summary(report: VerifyReport) {
  return {
    department: report.department,
    startedAt: report.startedAt,
    finishedAt: report.finishedAt,
    sha256: report.sha256,
    tables: report.tables.map((t) => ({ table: t.table, status: t.status, compared: t.compared, missing: t.missing.length, extra: t.extra.length, different: t.different.length, unsettled: t.unsettled.length })),
  };
}

/** Records a run in the audit ledger through the control API; without a token, says it was not recorded. */
async function record(o: ControlOptions, method: 'POST', path: string, body: unknown): Promise<void> {
  if (!o.token) {
    process.stderr.write('not recorded in the audit ledger: no control API token (--token or CDC_TOKEN)\n');
    return;
  }
  await callControl(o, method, path, body);
}

function printReport(report: VerifyReport): void {
  printTable([
    ['table', 'department table', 'status', 'compared', 'missing', 'extra', 'different', 'unsettled', 'seconds'],
    ...report.tables.map((t) => [t.table, t.targetTable, t.status, String(t.compared), String(t.missing.length), String(t.extra.length), String(t.different.length), String(t.unsettled.length), t.seconds.toFixed(1)]),
  ]);
  for (const t of report.tables) {
    for (const kind of ['missing', 'extra', 'different'] as const) {
      if (t[kind].length > 0) process.stdout.write(`${t.table} ${kind} (keys as ${report.department} holds them): ${t[kind].slice(0, 50).join(' ')}${t[kind].length > 50 ? ` … ${t[kind].length - 50} more (--json)` : ''}\n`);
    }
    if (t.reason) process.stdout.write(`${t.table}: ${t.reason}\n`);
  }
  process.stdout.write(`report sha256 ${report.sha256}\n`);
}
