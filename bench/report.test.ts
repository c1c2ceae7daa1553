import { describe, expect, it } from 'vitest';
import { parsePeerProfile, parsePeerProfiles, profileSettings } from './peer/debezium-profiles.js';
import { bestOfPeers, checkTargets, figureRows, markdown, medianStageWaits, peerRatios, type PeerSummary, type SuiteFigures } from './report.js';

const versions = { debezium_sink: 'debezium-connector-jdbc 3.6.0.Final' };
// Neither profile is better at everything: the tuned one moves more rows, the defaults one
// answers faster at p50, and they tie nowhere.
const summary = (e2e: number, latency: [number, number, number], saturation: [number, number, number], reader: number, rss: number): PeerSummary => ({
  e2e_rows_per_s: e2e,
  e2e_latency_ms: { p50: latency[0], p95: latency[1], p99: latency[2] },
  e2e_saturation_latency_ms: { p50: saturation[0], p95: saturation[1], p99: saturation[2] },
  reader_rows_per_s: reader,
  rss_mib: { kafka_connect: rss },
  versions,
});
const defaults = summary(5000, [400, 900, 1000], [8000, 9000, 9500], 18_000, 2000);
const tuned = summary(8000, [450, 700, 800], [5000, 6000, 6500], 25_000, 2200);

function figures(profiles: Record<string, PeerSummary>): SuiteFigures {
  return {
    reader_rows_per_s: 50_000,
    snapshot_rows_per_s: null,
    snapshot_rows: null,
    transformer_records_per_s: null,
    e2e_rows_per_s: 16_000,
    e2e_latency_ms: { p50: 200, p95: 500, p99: 900 },
    e2e_saturation_latency_ms: null,
    e2e_offered_rows_per_s: 5000,
    e2e_rate: 5000,
    rss_mib: { sink: 200 },
    peer: { debezium: bestOfPeers(profiles), debezium_profiles: profiles },
  };
}

describe('bestOfPeers', () => {
  it('takes per figure the better profile: rows/s the higher, each latency quantile and RSS the lower', () => {
    const best = bestOfPeers({ defaults, tuned })!;
    expect(best.e2e_rows_per_s).toBe(8000);
    expect(best.e2e_latency_ms).toEqual({ p50: 400, p95: 700, p99: 800 });
    expect(best.e2e_saturation_latency_ms).toEqual({ p50: 5000, p95: 6000, p99: 6500 });
    expect(best.reader_rows_per_s).toBe(25_000);
    expect(best.rss_mib).toEqual({ kafka_connect: 2000 });
    expect(best.from).toMatchObject({ e2e_rows_per_s: 'tuned', e2e_latency_p50: 'defaults', e2e_latency_p99: 'tuned', rss_mib_kafka_connect: 'defaults' });
  });

  it('leaves out a figure no profile measured, and is null without profiles', () => {
    const { reader_rows_per_s: _r, ...noReader } = defaults;
    const best = bestOfPeers({ defaults: noReader })!;
    expect(best.reader_rows_per_s).toBeUndefined();
    expect(best.e2e_rows_per_s).toBe(5000);
    expect(bestOfPeers({})).toBeNull();
  });
});

describe('the report against two peer profiles', () => {
  const f = figures({ defaults, tuned });

  it('takes ours/Debezium against the better profile', () => {
    const r = peerRatios(f);
    expect(r.e2e_rows_per_s).toBeCloseTo(16_000 / 8000);
    expect(r.e2e_latency_p50).toBeCloseTo(200 / 400);
    expect(r.reader_rows_per_s).toBeCloseTo(50_000 / 25_000);
    expect(checkTargets(f).at(-1)!.measured).toContain('e2e rows/s 2.00×');
  });

  it('shows each profile in its own column and the ratio against the better one', () => {
    const row = figureRows(f).find((r) => r.figure.startsWith('end to end, saturation'))!;
    expect(row.debezium_profiles).toEqual({ defaults: '5,000 rows/s', tuned: '8,000 rows/s' });
    expect(row.ratio).toBe('2.00×');
    const md = markdown({ date: '2026-12-07T00:00:00Z', machine: { cpus: 2, cpu_model: 'x', mem_gib: 24, os: 'Linux', node: 'v20', kafka: '4.1.1', mariadb: '10.11', postgresql: '15', kafkajs: '2.2.4', commit: 'abc' }, command: 'npm run bench', runs: 1, elapsedS: 60, figures: f, notes: [], errors: [] });
    expect(md).toContain('| figure | ours | Debezium defaults | Debezium tuned | ours/Debezium (better profile) | DESIGN target | verdict |');
    expect(md).toContain('| end to end, saturation (MariaDB commit → PostgreSQL) | 16,000 rows/s | 5,000 rows/s | 8,000 rows/s | 2.00× |');
    expect(md).toContain('against the better of them figure by figure');
  });

  it('keeps the single Debezium column when the peer ran in one profile', () => {
    const md = markdown({ date: '2026-12-07T00:00:00Z', machine: { cpus: 2, cpu_model: 'x', mem_gib: 24, os: 'Linux', node: 'v20', kafka: '4.1.1', mariadb: '10.11', postgresql: '15', kafkajs: '2.2.4', commit: 'abc' }, command: 'npm run bench', runs: 1, elapsedS: 60, figures: figures({ tuned }), notes: [], errors: [] });
    expect(md).toContain('| figure | ours | Debezium tuned | ours/Debezium | DESIGN target | verdict |');
    expect(md).not.toContain('better of them');
  });
});

describe('peer profiles', () => {
  it('parses a profile and a list of them, and names the choices when wrong', () => {
    expect(parsePeerProfile(undefined, '--profile')).toBe('defaults');
    expect(parsePeerProfile('tuned', '--profile')).toBe('tuned');
    expect(() => parsePeerProfile('fast', '--profile')).toThrow('--profile must be one of defaults, tuned, tuned-avro; got "fast"');
    expect(parsePeerProfiles('tuned, defaults,tuned', '--peer-profiles')).toEqual(['tuned', 'defaults']);
    expect(() => parsePeerProfiles(' , ', '--peer-profiles')).toThrow('names no profile');
  });

  it('keeps the defaults profile at the stock settings and tunes the other one', () => {
    const ctx = { partitions: 3, registryV2Url: 'http://127.0.0.1:8081/apis/registry/v2' };
    const d = profileSettings('defaults', ctx);
    expect(d.worker['value.converter']).toBe('org.apache.kafka.connect.json.JsonConverter');
    expect(d.sink).toEqual({ 'tasks.max': 1 });
    expect(d.avro).toBe(false);
    const t = profileSettings('tuned', ctx);
    expect(t.sink['tasks.max']).toBe(3);
    // A sink batch is capped by one consumer poll: the poll must be at least the batch.
    expect(Number(t.sink['consumer.override.max.poll.records'])).toBeGreaterThanOrEqual(Number(t.sink['batch.size']));
    expect(Number(t.source['max.queue.size'])).toBeGreaterThan(Number(t.source['max.batch.size']));
    // The JDBC sink needs a schema with every record: tuned keeps JSON with schemas.
    expect(t.worker['value.converter.schemas.enable']).toBe(true);
    const a = profileSettings('tuned-avro', ctx);
    expect(a.avro).toBe(true);
    expect(a.worker['value.converter.apicurio.registry.url']).toBe(ctx.registryV2Url);
    // Apart from the converter (and the Avro-safe names it asks for), tuned-avro is tuned.
    expect(a.sink).toEqual(t.sink);
    const { 'schema.name.adjustment.mode': names, ...avroSource } = a.source;
    expect(names).toBe('avro');
    expect(avroSource).toEqual(t.source);
  });
});

describe('where a row waits', () => {
  it('takes per stage the median of the runs, leaving out runs without it', () => {
    const waits = medianStageWaits([
      { 'transformer batch wait': { mean_ms: 100, per_s: 50 }, 'sink batch wait': { mean_ms: 40, per_s: 20 } },
      { 'transformer batch wait': { mean_ms: 300, per_s: 30 } },
      { 'transformer batch wait': { mean_ms: 150, per_s: 40 }, 'sink batch wait': { mean_ms: 60, per_s: 30 } },
    ]);
    expect(waits).toEqual({ 'transformer batch wait': { mean_ms: 150, per_s: 40 }, 'sink batch wait': { mean_ms: 50, per_s: 25 } });
    expect(medianStageWaits([])).toBeNull();
  });

  it('shows them in the report when the runs measured them, and nothing otherwise', () => {
    const machine = { cpus: 2, cpu_model: 'x', mem_gib: 24, os: 'Linux', node: 'v20', kafka: '4.1.1', mariadb: '10.11', postgresql: '15', kafkajs: '2.2.4', commit: 'abc' };
    const f = { ...figures({ tuned }), stage_waits: { 'transformer batch wait': { mean_ms: 1500, per_s: 40 } } };
    const md = markdown({ date: '2026-12-07T00:00:00Z', machine, command: 'npm run bench', runs: 1, elapsedS: 60, figures: f, notes: [], errors: [] });
    expect(md).toContain('## Where a row waits at 5,000 rows/s (ours)');
    expect(md).toContain('| transformer batch wait | 1,500 ms | 40 |');
    expect(markdown({ date: '2026-12-07T00:00:00Z', machine, command: 'npm run bench', runs: 1, elapsedS: 60, figures: figures({ tuned }), notes: [], errors: [] })).not.toContain('Where a row waits');
  });
});
