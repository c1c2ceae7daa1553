/**
 * cdc: the operator's command line: the control plane's operations through its API
 * (apply, sources, tables, departments, grants, keys, audit), reader signals (ad-hoc
 * re-snapshot) through Kafka, status, and a department's encrypted values opened with its
 * keyring.
 *   npx cdc snapshot civil.citizens [--source cityhub] [--config pipeline.yaml]
 *   npx cdc decrypt --keyring health-keyring.json --column civil.citizens.id_card '\x02…'
 */
import { writeFileSync } from 'node:fs';
import { MultiBar, Presets } from 'cli-progress';
import { Command, CommanderError } from 'commander';
import { ApiError, callControl, exitCodeOf, printTable, readInputFile, type ControlOptions } from './control-client.js';
import { addControlCommands } from './control-commands.js';
import { addVerifyCommands } from './verify-commands.js';
import { Queue } from 'bullmq';
import { createConnection, createPool } from 'mysql2/promise';
import { CheckpointStore } from '@cityshare/cdc-reader/checkpoint-store';
import { binlogEnd } from '@cityshare/cdc-reader/source-check';
import { signalRecord } from '@cityshare/cdc-reader/signal-listener';
import { AuditLedger, describeVerification } from '@cityshare/control/ledger';
import { controlAttention, departmentLags, type ControlStatusView } from '@cityshare/control/pipeline-status';
import { pipelineTargets } from '@cityshare/sink/targets';
import { grantsInForce, isInForce, purgeRevoked, type QueuedBatch } from '@cityshare/sink/webhook-queue';
import { CdcError, FileKeyring, POLICY_PUBLIC_KEYS_ENV, POLICY_SIGNATURE_PREFIX, createKafka, createLogger, isCdcError, kafkaSecurityError, keyNames, loadPipeline, openDepartmentValue, pipelineTopics, policySigningKey, producerConfig, queues, redisTlsOptions, signPolicy, sourceConnectionOptions } from '@cityshare/shared';

const program = new Command('cdc')
  .description('cityshare operations')
  // Usage errors (a missing option or argument, an unknown command) end with exit 3, commander's message kept.
  .exitOverride()
  .option('-c, --config <file>', 'pipeline file (commands that read it directly)', process.env.CITYSHARE_PIPELINE ?? 'pipeline.yaml')
  .option('--api <url>', 'control API (catalog, grants, keys, audit)', process.env.CDC_CONTROL_API ?? 'http://127.0.0.1:8090')
  .option('--token <token>', 'bearer token for the control API', process.env.CDC_TOKEN)
  .option('--ca <file>', 'CA certificate (PEM) of an HTTPS control API with a private CA', process.env.CDC_CA_FILE);
addControlCommands(program);
addVerifyCommands(program);

program
  .command('snapshot')
  .description('snapshot registered tables again while streaming continues (rows arrive as op "r")')
  .argument('<tables...>', 'db.table names as registered in the pipeline file')
  .option('-s, --source <name>', 'source the tables belong to (may be omitted when there is one)')
  .option('--progress <reader-metrics-url>', "follow the snapshot with a progress bar per table from the active reader's metrics, e.g. http://reader:9464/metrics")
  .action(async (tables: string[], options: { source?: string; progress?: string }) => {
    const { config, keyringPath } = loadPipeline(program.opts<{ config: string }>().config, process.env, pipelineTargets);
    const source = options.source ? config.sources.find((s) => s.name === options.source) : config.sources.length === 1 ? config.sources[0] : undefined;
    if (!source) throw new CdcError('CONFIG_INVALID', options.source ? `no source named ${options.source}` : 'the pipeline has several sources: pass --source');
    const registered = new Set<string>(source.tables.map((t) => t.name));
    const unknown = tables.filter((t) => !registered.has(t));
    if (unknown.length > 0) throw new CdcError('TABLE_NOT_FOUND', `not registered on source ${source.name}: ${unknown.join(', ')}`);
    // Rows read so far, before the request: a small table may be done before the first look.
    const progress = options.progress ? snapshotProgress(options.progress, source.name, tables) : undefined;
    const baseline = await progress?.read();
    const kafka = createKafka(config.kafka, 'cityshare-cli', createLogger('cdc', 'warn'));
    const producer = kafka.producer(producerConfig({ retry: { retries: 5 } }));
    // The reader acts only on signals signed with the pipeline key (anyone may write to the topic).
    const { topic, message } = signalRecord(FileKeyring.load(keyringPath), config.kafka.topicPrefix, { action: 'snapshot', source: source.name, tables, requestedBy: process.env.USER ?? 'cli' });
    try {
      await producer.connect();
      await producer.send({ topic, acks: -1, messages: [message] });
    } catch (err) {
      throw kafkaSecurityError(err, config.kafka, topic);
    } finally {
      await producer.disconnect();
    }
    process.stdout.write(`re-snapshot of ${tables.join(', ')} requested from the ${source.name} reader\n`);
    if (progress && baseline) await progress.follow(baseline);
  });

program
  .command('decrypt')
  .description("open values a department received encrypted (its share topic's bytes or its table's bytea), with the department's keyring only; each value is bound to its source, department, column and row")
  .requiredOption('-k, --keyring <file>', "the department's keyring file")
  .requiredOption('-s, --source <name>', 'the source the table comes from (the first part of the grant\'s source.db.table)')
  .requiredOption('-d, --department <name>', 'the department the values were delivered to')
  .requiredOption('--column <db.table.column>', 'the source column the values belong to')
  .option('--key <json>', 'the row\'s key as the department received it (the share record\'s key), e.g. \'{"id":"1"}\'; for a table without a primary key \'{"__version":"<its __version>"}\'. On stdin a line may carry its own: <key JSON><TAB><ciphertext>')
  .option('--no-layout2', 'refuse version-2 ciphertexts of earlier releases (bound to the column only)')
  .argument('[values...]', 'ciphertexts as base64 or as hex with a \\x prefix (as psql prints bytea); read one per line from stdin when none are given')
  .action(async (values: string[], options: { keyring: string; source: string; department: string; column: string; key?: string; layout2: boolean }) => {
    const parts = options.column.split('.');
    if (parts.length !== 3) throw new CdcError('CONFIG_INVALID', `--column must be db.table.column, got ${options.column}`);
    const [db, table, column] = parts as [string, string, string];
    const keys = FileKeyring.load(options.keyring);
    const inputs = values.length > 0 ? values : (await readStdin()).split('\n').map((l) => l.trim()).filter(Boolean);
    for (const input of inputs) {
      const tab = input.lastIndexOf('\t');
      const keyJson = tab >= 0 ? input.slice(0, tab) : options.key;
      if (keyJson === undefined) throw new CdcError('CONFIG_INVALID', 'each value needs its row key: pass --key \'{"id":"1"}\' (or, on stdin, <key JSON><TAB><ciphertext>)');
      const text = input.slice(tab + 1).trim();
      const bytes = text.startsWith('\\x') ? Buffer.from(text.slice(2), 'hex') : Buffer.from(text, 'base64');
      const binding = { source: options.source, department: options.department, db, table, column, key: rowKeyJson(keyJson) };
      process.stdout.write(`${JSON.stringify(openDepartmentValue(keys, bytes, binding, { allowLayout2: options.layout2 }))}\n`);
    }
  });

/** A row key given on the command line: a JSON object of key columns. */
function rowKeyJson(text: string): Record<string, unknown> {
  let key: unknown;
  try {
    key = JSON.parse(text);
  } catch {
    throw new CdcError('CONFIG_INVALID', `the row key must be a JSON object such as {"id":"1"}, got ${text}`);
  }
  if (!key || typeof key !== 'object' || Array.isArray(key)) throw new CdcError('CONFIG_INVALID', `the row key must be a JSON object such as {"id":"1"}, got ${text}`);
  return key as Record<string, unknown>;
}

program
  .command('webhook-replay')
  .description("send a department's dead-lettered webhook batches again, oldest first (after its endpoint is fixed); batches of grants no longer in force are removed instead, and the command ends with GRANT_REVOKED")
  .argument('<department>', 'department whose target is http')
  .action(async (name: string) => {
    const { config } = loadPipeline(program.opts<{ config: string }>().config, process.env, pipelineTargets);
    const department = config.departments.find((d) => d.name === name);
    if (!department) throw new CdcError('CONFIG_INVALID', `no department named ${name} in the pipeline file`);
    // The queue replayed is the http target's own (BullMQ, in its Redis), so this is about which target, not what it can do.
    if (department.target.kind !== 'http') throw new CdcError('CONFIG_INVALID', `department ${name} has a ${department.target.kind} target; only http targets have a webhook dead-letter queue`);
    const queue = new Queue(queues.webhook(config.kafka.topicPrefix, name), { connection: { url: department.target.redisUrl, maxRetriesPerRequest: null, ...redisTlsOptions(department.target.redisTls, 'redisTls') } });
    // A lost Redis rejects the calls below too; the command fails with them, not with an unhandled event.
    queue.on('error', () => undefined);
    try {
      // The grants in force now, not when the batch was queued: a revoked grant's batches are removed, never sent.
      const inForce = grantsInForce(department);
      const purged = await purgeRevoked(queue, inForce, ['failed']);
      const failed = (await queue.getFailed(0, -1)).filter((job) => isInForce(job.data as Partial<QueuedBatch>, inForce)).sort((a, b) => a.timestamp - b.timestamp);
      for (const job of failed) await job.retry('failed');
      if (failed.length > 0 || purged.size === 0) process.stdout.write(`${failed.length} dead-lettered batch(es) of ${name} queued again\n`);
      if (purged.size > 0) {
        const removed = [...purged].map(([grant, n]) => `${n} of ${grant}`).join(', ');
        throw new CdcError('GRANT_REVOKED', `dead-lettered batches of ${name} whose grant is no longer in force were removed from the queue and not sent: ${removed}`, { details: { department: name, batches: Object.fromEntries(purged) } });
      }
    } finally {
      await queue.close();
    }
  });

program
  .command('status')
  .description("how far behind each source's reader and each department is, from the pipeline file (-c) and Kafka as the control principal (KAFKA_USERNAME, KAFKA_PASSWORD_FILE); with a control-plane token, the control plane's state too; exit 1 when something needs attention")
  .option('--json', 'print as JSON')
  .action(async (o: { json?: boolean }) => {
    const { config, keyringPath } = loadPipeline(program.opts<{ config: string }>().config, process.env, pipelineTargets);
    // Checkpoints count only when the pipeline key authenticates them.
    const keys = FileKeyring.load(keyringPath);
    const prefix = config.kafka.topicPrefix;
    const kafka = createKafka(config.kafka, 'cityshare-cli', createLogger('cdc', 'warn'));
    const admin = kafka.admin();
    await admin.connect().catch((err: unknown) => {
      throw kafkaSecurityError(err, config.kafka);
    });
    try {
      const planned = pipelineTopics(config);
      const departments = await departmentLags(admin, config);
      // Each source: where its reader's last checkpoint is, against the end of the source's binlog.
      const sources = [];
      for (const source of config.sources) {
        const checkpoint = await new CheckpointStore(kafka, kafka.producer(producerConfig()), prefix, source.name, createLogger('cdc', 'warn'), { keys: () => keys, settings: config.kafka }).load();
        // error events: one query and end, the connection lost in between rejects the query and the status shows no binlog end.
        const end = await createConnection(sourceConnectionOptions(source)).then(
          async (conn) => binlogEnd(conn).finally(() => void conn.end()),
          () => undefined,
        );
        sources.push({ source: source.name, checkpoint: checkpoint ? { file: checkpoint.file, pos: checkpoint.pos, gtid: checkpoint.gtid ?? null, savedAt: checkpoint.savedAt } : null, binlogEnd: end ? { file: end.file, pos: end.pos } : null });
      }
      const opts = program.opts<ControlOptions>();
      const control = opts.token ? await callControl<ControlStatus>(opts, 'GET', 'status') : undefined;
      const attention = needsAttention(sources, control);
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ pipeline: prefix, sources, departments, ...(control ? { control } : {}), attention }, null, 2)}\n`);
      } else {
        process.stdout.write(`pipeline ${prefix}: ${planned.raw.length} source table(s), ${config.departments.length} department(s)\n`);
        for (const s of sources) {
          const at = s.checkpoint ? `${s.checkpoint.file}:${s.checkpoint.pos}${s.checkpoint.gtid ? ` (GTID ${s.checkpoint.gtid})` : ''}, saved ${s.checkpoint.savedAt}` : 'no checkpoint yet';
          process.stdout.write(`source ${s.source}: reader checkpoint ${at}; source binlog end ${s.binlogEnd ? `${s.binlogEnd.file}:${s.binlogEnd.pos}` : 'unreachable'}\n`);
        }
        printTable([['department', 'target', 'transformer lag (offsets)', 'sink lag (offsets)'], ...departments.map((d) => [d.department, d.target, String(d.transformerLag), String(d.sinkLag)])]);
        if (control) {
          const g = control.grants;
          process.stdout.write(`control plane: ${control.catalog.sources} source(s), ${control.catalog.tables} table(s), ${control.catalog.departments} department(s); grants ${g.approved ?? 0} approved, ${g.requested ?? 0} waiting for a decision, ${(g.revoked ?? 0) + (g.expired ?? 0) + (g.rejected ?? 0)} ended\n`);
          process.stdout.write(`  policy ${control.policy.sha256 ? `published (sha256 ${control.policy.sha256.slice(0, 16)}…)` : 'not published yet'} to ${control.policy.file}\n`);
          process.stdout.write(`  audit ledger at its last verification (${control.audit.at}, ${control.audit.full ? 'full' : 'incremental'}; every CONTROL_VERIFY_INTERVAL_MS): ${control.audit.entries} entries, ${control.audit.problems === 0 ? 'intact' : `${control.audit.problems} problem(s)`}, signed head ${control.audit.head.seq}\n`);
        }
        process.stdout.write(attention.length === 0 ? 'nothing needs attention\n' : `needs attention:\n${attention.map((a) => `  - ${a.code}: ${a.what}`).join('\n')}\n`);
      }
      // Exit 2 when the ledger does not verify, 1 when anything else needs attention.
      if (attention.length > 0) process.exitCode = attention.some((a) => a.code === 'AUDIT_LEDGER_TAMPERED') ? 2 : 1;
    } finally {
      await admin.disconnect();
    }
  });

/** What the control service's GET /status answers. */
type ControlStatus = Required<ControlStatusView>;

/** What in a status needs someone to act, each with its error code. */
function needsAttention(sources: Array<{ source: string; checkpoint: unknown; binlogEnd: unknown }>, control: ControlStatus | undefined): Array<{ code: string; what: string }> {
  const out: Array<{ code: string; what: string }> = [];
  for (const s of sources) {
    if (!s.binlogEnd) out.push({ code: 'SOURCE_UNREACHABLE', what: `source ${s.source} does not answer` });
    if (!s.checkpoint) out.push({ code: 'SOURCE_UNREACHABLE', what: `no reader of ${s.source} has saved a checkpoint yet: is it running?` });
  }
  return [...out, ...controlAttention(control)];
}

const policy = program.command('policy').description("the published policy's signature: the public key services trust, signing a hand-written file");
policy
  .command('public-key')
  .description(`print the ${POLICY_PUBLIC_KEYS_ENV} value for services: the public keys of every key of the keyring's policy list`)
  .requiredOption('-k, --keyring <file>', "the control plane's keyring (CONTROL_KEYRING)")
  .action((options: { keyring: string }) => {
    const keys = FileKeyring.load(options.keyring).keysOf(keyNames.policy);
    process.stdout.write(`${POLICY_PUBLIC_KEYS_ENV}=${keys.map((k) => policySigningKey(k).publicKey).join(',')}\n`);
  });
policy
  .command('sign <file>')
  .description('sign a hand-written pipeline file in place with the newest policy key, for services that require signatures')
  .requiredOption('-k, --keyring <file>', "the control plane's keyring (CONTROL_KEYRING)")
  .action((file: string, options: { keyring: string }) => {
    const text = readInputFile(file, 'pipeline file');
    const body = text.split('\n').filter((line) => !line.startsWith(POLICY_SIGNATURE_PREFIX)).join('\n');
    writeFileSync(file, signPolicy(body, FileKeyring.load(options.keyring).activeKey(keyNames.policy)));
    process.stdout.write(`signed ${file}\n`);
  });

program
  .command('audit-verify')
  .description('check the control plane\'s audit ledger: every entry in its chain, every signed checkpoint, the signed head; exit 2 when tampering is found')
  .requiredOption('--control-url <url>', 'mysql://user:password@host:port/database of the control plane')
  .requiredOption('-k, --keyring <file>', 'keyring holding the audit key')
  .option('--json', 'print the result as JSON')
  .action(async (options: { controlUrl: string; keyring: string; json?: boolean }) => {
    // error events: a mysql2 pool emits none; each pooled connection has its own listener and a failed one is dropped.
  const conn = createPool({ uri: options.controlUrl, charset: 'utf8mb4', connectionLimit: 2 });
    try {
      const result = await new AuditLedger(conn, FileKeyring.load(options.keyring)).verify();
      if (options.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else process.stdout.write(describeVerification(result));
      if (result.problems.length > 0) process.exitCode = 2;
    } finally {
      await conn.end();
    }
  });

/**
 * Progress bars of a running snapshot, from the reader's metrics: rows read since the
 * request against rows read plus the estimate left. Ends when every table's snapshot ran
 * and is done.
 */
function snapshotProgress(url: string, source: string, tables: string[]) {
  type Reading = Map<string, { rows: number; remaining: number; running: number; eta: number }>;
  const read = async (): Promise<Reading> => {
    const text = await fetch(url).then((r) => r.text()).catch((cause: Error) => {
      throw new CdcError('SOURCE_UNREACHABLE', `reader metrics at ${url} not reachable: ${cause.message}`, { cause });
    });
    const value = (name: string, table: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`source="${source}"`) && l.includes(`table="${table}"`));
      return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
    };
    return new Map(tables.map((t) => [t, { rows: value('cityshare_reader_snapshot_rows_total', t), remaining: value('cityshare_reader_snapshot_remaining_rows', t), running: value('cityshare_reader_snapshot_running', t), eta: value('cityshare_reader_snapshot_eta_seconds', t) }]));
  };
  const follow = async (start: Reading) => {
    const seenRunning = new Set<string>();
    const width = Math.max(...tables.map((x) => x.length));
    const bars = new MultiBar({ format: ' {table} |{bar}| {percentage}% {value}/{total} rows, ETA {etaText}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000, stream: process.stdout }, Presets.shades_classic);
    const bar = new Map(tables.map((t) => [t, bars.create(1, 0, { table: t.padEnd(width), etaText: '?' })]));
    try {
      for (let finished = 0; finished < tables.length; ) {
        await new Promise((r) => setTimeout(r, 500));
        const now = await read();
        finished = 0;
        for (const t of tables) {
          const m = now.get(t)!;
          const done = m.rows - start.get(t)!.rows;
          if (m.running === 1 || done > 0) seenRunning.add(t);
          const over = seenRunning.has(t) && m.running === 0;
          bar.get(t)!.setTotal(Math.max(1, over ? done : done + m.remaining));
          bar.get(t)!.update(done, { etaText: over ? 'done' : `${m.eta} s` });
          if (over) finished++;
        }
      }
    } finally {
      bars.stop();
    }
  };
  return { read, follow };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Exit codes (exitCodeOf): 0 done; 1 failed (unreachable, unexpected); 2 the audit ledger
 * does not verify; 3 invalid input or usage (every problem listed); 4 not authenticated or
 * not allowed; 5 not found; 6 `verify` found differences. `webhook-replay` ends with 4 when it removed batches of a
 * revoked grant instead; `status` with 1 when something needs attention, 2 when the ledger
 * does not verify.
 */
try {
  await program.parseAsync();
} catch (err) {
  if (err instanceof CommanderError) {
    // commander printed its message already; --help and --version end with 0.
    process.exitCode = err.exitCode === 0 ? 0 : exitCodeOf('USAGE');
  } else if (err instanceof ApiError) {
    process.stderr.write(`${err.body.code ?? 'ERROR'}: ${err.message}\n${(err.body.problems ?? []).length > 0 && !err.message.includes('\n') ? `  - ${err.body.problems!.join('\n  - ')}\n` : ''}${err.body.action ? `${err.body.action}\n` : ''}${err.body.correlationId ? `correlation id: ${err.body.correlationId}\n` : ''}`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`${isCdcError(err) ? err.toString() : (err as Error).message}\n`);
    process.exitCode = isCdcError(err) ? exitCodeOf(err.code) : 1;
  }
}
