/**
 * Debezium peer of the end-to-end benchmark (see bench/peer/debezium.ts); prints its figures
 * as JSON on stdout, progress on stderr.
 *   npm run bench:debezium -- [--rows 100000] [--rate 5000] [--seconds 20] [--reader-rows N (default --rows; 0 skips)]
 *                             [--profile defaults|tuned|tuned-avro (default $DEBEZIUM_PEER_PROFILE, else defaults)]
 *   node --import tsx bench/peer/debezium-main.ts --rows 20000 --rate 2000 --seconds 10 --profile tuned
 */
import { parseArgs } from 'node:util';
import { runDebeziumPeer } from './debezium.js';
import { parsePeerProfile } from './debezium-profiles.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '100000' }, rate: { type: 'string', default: '5000' }, seconds: { type: 'string', default: '20' }, 'reader-rows': { type: 'string' }, profile: { type: 'string' } } });
const o = { rows: Number(args.rows), rate: Number(args.rate), seconds: Number(args.seconds) };
for (const [k, v] of Object.entries(o)) {
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${k} must be a positive integer`);
}
const readerRows = args['reader-rows'] === undefined ? o.rows : Number(args['reader-rows']);
if (!Number.isInteger(readerRows) || readerRows < 0) throw new Error('--reader-rows must be a non-negative integer');
const profile = parsePeerProfile(args.profile ?? process.env.DEBEZIUM_PEER_PROFILE, args.profile === undefined && process.env.DEBEZIUM_PEER_PROFILE ? 'DEBEZIUM_PEER_PROFILE' : '--profile');

try {
  const figures = await runDebeziumPeer({ ...o, readerRows, profile });
  console.log(JSON.stringify({ peer: 'debezium', workload: { ...o, readerRows }, ...figures }, null, 2));
} catch (err) {
  console.error(err);
  process.exitCode = 1;
}
