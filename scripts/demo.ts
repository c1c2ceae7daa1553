/**
 * The demo: sample smart-city data flows from the project's MariaDB through the three
 * services to two departments' PostgreSQL schemas (health, and the Haidian district
 * office with a row filter), with live changes, and the result is printed next to the
 * source. Run with `npm run demo`.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isCdcError, openDepartmentValue } from '@cityshare/shared';
import { eventually } from './support/eventually.js';
import { adminKafka } from './support/kafka-security.js';
import { PipelineRun } from './support/pipeline-run.js';
import { freePort } from './support/service-process.js';
import { stack } from './support/stack.js';
import { LOCAL_TOKENS, prepareLocalControl } from './control-local.js';
import { busTaps, citizens, clinicVisits } from './sample-data.js';

const CITIZENS = 40;
const VISITS = 60;
const TAPS = 200;

const say = (msg: string) => console.log(`\n\x1b[1m== ${msg}\x1b[0m`);

async function removeOldDemoTopics(current: string): Promise<void> {
  const kafka = adminKafka('demo');
  const admin = kafka.admin();
  await admin.connect();
  try {
    const old = (await admin.listTopics()).filter((t) => /^demo[0-9a-z]+\./.test(t) && !t.startsWith(`${current}.`));
    if (old.length > 0) await admin.deleteTopics({ topics: old });
  } finally {
    await admin.disconnect();
  }
}

async function main(): Promise<void> {
  const run = new PipelineRun({
    id: `demo${Date.now().toString(36)}`,
    civilDb: 'civil',
    healthDb: 'health',
    transportDb: 'transport',
    pgSchema: 'dept_health',
    haidianPgSchema: 'dept_haidian',
    keyringFile: `${stack.root}.stack/keyring.json`,
  });
  say(`Preparing source databases civil, health, transport on MariaDB :${stack.source.port} (topic prefix ${run.prefix})`);
  await removeOldDemoTopics(run.prefix);
  await run.setUp();

  say('Starting cdc-reader, transformer and a sink per department (logs in .stack/logs/test/)');
  for (const [name, department] of [['cdc-reader', ''], ['transformer', ''], ['sink', 'health'], ['sink', 'haidian']] as const) {
    const svc = await run.start(name, department ? { SINK_DEPARTMENT: department } : {});
    console.log(`  ${`${name}${department ? ` (${department})` : ''}`.padEnd(18)} ready   metrics http://127.0.0.1:${svc.port}/metrics   log ${svc.logFile}`);
  }

  say(`Loading ${CITIZENS} citizens, ${VISITS} clinic visits and ${TAPS} bus card taps`);
  const people = citizens(CITIZENS);
  await run.source.query(
    'INSERT INTO civil.citizens (id, name, id_card, phone, birth_date, district, address, registered_at) VALUES ?',
    [people.map((c) => [c.id, c.name, c.id_card, c.phone, c.birth_date, c.district, c.address, new Date()])],
  );
  const visits = clinicVisits(VISITS, CITIZENS);
  await run.source.query('INSERT INTO health.clinic_visits (id, citizen_id, clinic, visited_at, diagnosis, fee) VALUES ?', [
    visits.map((v) => [v.id, v.citizen_id, v.clinic, v.visited_at, v.diagnosis, v.fee]),
  ]);
  // Breaks the data-quality rule `fee: { min: 0 }`: goes to the dead-letter topic, not to health.
  await run.source.query("INSERT INTO health.clinic_visits VALUES (9999, 1, '海淀医院', NOW(3), '复诊', -5.00)");
  const taps = busTaps(TAPS);
  await run.source.query('INSERT INTO transport.bus_card_taps (card_no, route, stop_name, tapped_at, fare) VALUES ?', [
    taps.map((t) => [t.card_no, t.route, t.stop_name, t.tapped_at, t.fare]),
  ]);

  say('Live changes: a new phone number, a move, a re-numbered record, two deletions, a new citizen');
  await run.source.query("UPDATE civil.citizens SET phone = '13911112222' WHERE id = 1");
  await run.source.query("UPDATE civil.citizens SET district = '朝阳', address = '北京市朝阳区建国路88号' WHERE id = 2");
  await run.source.query('UPDATE civil.citizens SET id = 1003 WHERE id = 3');
  await run.source.query('DELETE FROM civil.citizens WHERE id IN (4, 5)');
  await run.source.query(
    "INSERT INTO civil.citizens VALUES (41, '司马相如', '110101199912310017', '13600001234', '1999-12-31', '东城', '北京市东城区王府井大街1号', NOW(6))",
  );

  const [sourceRows] = await run.source.query('SELECT id, name, id_card, phone, birth_date, district FROM civil.citizens ORDER BY id');
  const source = sourceRows as Array<Record<string, unknown>>;
  const delivered = await eventually(async () => {
    const { rows } = await run.pg.query('SELECT * FROM dept_health.citizens ORDER BY id');
    const visitsIn = await run.pg.query('SELECT count(*)::int AS n FROM dept_health.clinic_visits');
    if (rows.length !== source.length || visitsIn.rows[0].n !== VISITS) throw new Error('not there yet');
    if (rows.find((r) => r.id === '2')?.district !== '朝阳') throw new Error('update not there yet');
    return rows as Array<Record<string, unknown>>;
  }, 120_000);

  say(`The health department received ${delivered.length} citizens (source holds ${source.length}); first six, source | department:`);
  const byId = new Map(delivered.map((r) => [String(r.id), r]));
  console.log('  id   name (src -> dept)      phone (src -> dept)          id_card (dept: ciphertext -> decrypted with the health key)');
  for (const s of source.slice(0, 6)) {
    const d = byId.get(String(s.id))!;
    const cipher = d.id_card as Buffer;
    const opened = openDepartmentValue(run.keys, cipher, { source: 'cityhub', department: 'health', db: 'civil', table: 'citizens', column: 'id_card', key: { id: d.id } }) as string;
    console.log(
      `  ${String(s.id).padEnd(4)} ${String(s.name)} -> ${String(d.name)}  ${s.phone} -> ${d.phone}  ${cipher.toString('hex').slice(0, 16)}… -> ${opened}`,
    );
  }
  console.log('  (address and registered_at are not granted to health: they are not in its table; the transport database is not shared with it at all)');

  const { rows: visitRows } = await run.pg.query('SELECT id, clinic, visited_at, fee, diagnosis FROM dept_health.clinic_visits ORDER BY id LIMIT 3');
  say('Clinic visits at the department (fee exact, time with zone, diagnosis encrypted for health):');
  for (const v of visitRows) {
    const diagnosis = openDepartmentValue(run.keys, v.diagnosis, { source: 'cityhub', department: 'health', db: 'health', table: 'clinic_visits', column: 'diagnosis', key: { id: v.id } }) as string;
    console.log(`  ${v.id} ${v.clinic} ${(v.visited_at as Date).toISOString()} fee=${v.fee} diagnosis=${diagnosis}`);
  }

  const haidianExpected = source.filter((s) => s.district === '海淀').length;
  const haidian = await eventually(async () => {
    const { rows } = await run.pg.query('SELECT * FROM dept_haidian.citizens ORDER BY id');
    if (rows.length !== haidianExpected) throw new Error('not there yet');
    return rows as Array<Record<string, unknown>>;
  }, 120_000);
  say(`The Haidian district office received only its district's ${haidian.length} citizens (filter district == "海淀"); first four:`);
  for (const d of haidian.slice(0, 4)) {
    console.log(`  ${String(d.id).padEnd(4)} ${String(d.name)}  ${String(d.phone)}  born ${String(d.birth_date)}  ${String(d.address)}  id_card …${String(d.id_card).slice(-16)} (token of the shared citizen domain)`);
  }
  if (people.find((p) => p.id === 2)?.district === '海淀') console.log('  (citizen 2 moved from 海淀 to 朝阳 during the demo: its row left the office\'s table, delivered to it as a delete)');

  const transformer = run.services.find((s) => s.name === 'transformer')!;
  const dead = (await transformer.metrics()).split('\n').filter((l) => l.startsWith('cityshare_transformer_dlq_total'));
  say('Dead-lettered by the transformer (the visit with fee -5.00 breaks `fee: { min: 0 }`; still sealed on <prefix>.dlq.transformer):');
  for (const line of dead) console.log(`  ${line}`);

  const reader = run.services.find((s) => s.name === 'cdc-reader')!;
  const events = (await reader.metrics()).split('\n').filter((l) => l.startsWith('cityshare_reader_events_total'));
  say('Reader metrics (cityshare_reader_events_total):');
  for (const line of events) console.log(`  ${line}`);

  await governance(run);

  await run.tearDown({ keepData: true });
  say('Done. The data stays for you to look at:');
  console.log(`  psql ${stack.postgresUrl} -c 'SELECT * FROM dept_health.citizens LIMIT 5'`);
  console.log(`  psql ${stack.postgresUrl} -c 'SELECT * FROM dept_haidian.citizens LIMIT 5'`);
  console.log(`  mariadb -h127.0.0.1 -P${stack.source.port} -uroot civil -e 'SELECT * FROM citizens LIMIT 5'`);
  console.log('  npm run control      # the control plane and the services on its policy, to share your own table (README "Share your own table")');
  console.log('  npm run stack:down   # stops MariaDB :3307, Kafka and the registry');
}

/** The control plane: a DBA registers a table, a department requests it, an officer approves; all in the ledger. */
async function governance(run: PipelineRun): Promise<void> {
  say('Governance: the control plane keeps the catalog, the grant workflow and a hash-chained audit ledger');
  const port = await freePort();
  const env = await prepareLocalControl({ database: 'cityshare_control_demo', dir: join(stack.root, '.stack', 'control-demo'), keyringFile: run.keyringFile, port });
  await run.start('control', env);
  const cdc = (who: keyof typeof LOCAL_TOKENS, ...args: string[]) => {
    console.log(`  $ cdc ${args.map((a) => (/[\s{}"]/.test(a) ? `'${a}'` : a)).join(' ')}    # as ${LOCAL_TOKENS[who].name} (${LOCAL_TOKENS[who].role})`);
    const r = spawnSync(process.execPath, ['packages/cli/bin/cdc.js', '--api', `http://127.0.0.1:${port}`, '--token', LOCAL_TOKENS[who].token, ...args], { cwd: stack.root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`cdc ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };
  const indent = (text: string, last = 12) => console.log(text.trimEnd().split('\n').slice(-last).map((l) => `    ${l}`).join('\n'));
  indent(cdc('dba', 'tables', 'register', 'cityhub', `${run.transportDb}.bus_card_taps`, '--column', 'id=public', '--column', 'card_no=personal', '--column', 'route=public', '--column', 'stop_name=public', '--column', 'tapped_at=internal', '--reason', 'transit planning'));
  const request = JSON.parse(cdc('health', 'grants', 'request', '--table', `cityhub.${run.transportDb}.bus_card_taps`, '--column', 'route=pass', '--column', 'stop_name=pass', '--column', 'card_no=tokenize', '--purpose', 'exposure tracing', '--expires', new Date(Date.now() + 30 * 86_400_000).toISOString(), '--json')) as { id: number };
  console.log(`    grant ${request.id} requested`);
  indent(cdc('officer', 'grants', 'approve', String(request.id), '--reason', 'approved for 30 days'));
  indent(cdc('officer', 'grants', 'list'));
  await eventually(async () => {
    if (!readFileSync(env.CITYSHARE_PIPELINE!, 'utf8').includes(`cityhub.${run.transportDb}.bus_card_taps`)) throw new Error('not published yet');
  }, 10_000);
  console.log(`    (published to ${env.CITYSHARE_PIPELINE}: services started on that file deliver the grant within seconds)`);
  indent(cdc('auditor', 'audit', 'show', '--limit', '1000'), 8);
  indent(cdc('sre', 'audit', 'verify'));
}

main().catch((err: unknown) => {
  console.error(isCdcError(err) ? err.toString() : err);
  process.exit(1);
});
