import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { metricsTargets, parseMetrics } from '../src/metrics-scrape.js';

describe('metrics scrape', () => {
  it('reads samples with their labels, escapes included, and skips comments', () => {
    const text = [
      '# HELP cityshare_reader_lag_seconds Seconds',
      '# TYPE cityshare_reader_lag_seconds gauge',
      'cityshare_reader_lag_seconds{service="cdc-reader",source="cityhub"} 0.25',
      'cityshare_transformer_dlq_total{reason="QUALITY_FAILED",department="a\\"b,c"} 3',
      'cityshare_nodejs_heap_size_total_bytes 123456',
      'not a sample',
    ].join('\n');
    expect(parseMetrics(text)).toEqual([
      { name: 'cityshare_reader_lag_seconds', labels: { service: 'cdc-reader', source: 'cityhub' }, value: 0.25 },
      { name: 'cityshare_transformer_dlq_total', labels: { reason: 'QUALITY_FAILED', department: 'a"b,c' }, value: 3 },
      { name: 'cityshare_nodejs_heap_size_total_bytes', labels: {}, value: 123456 },
    ]);
  });

  it('lists the targets of a Prometheus file_sd file, JSON or YAML, and says what is wrong with one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'file-sd-'));
    writeFileSync(join(dir, 'a.json'), JSON.stringify([{ targets: ['127.0.0.1:9464', '127.0.0.1:9465'], labels: { job: 'cityshare' } }, { targets: ['127.0.0.1:9466'] }]));
    writeFileSync(join(dir, 'b.yaml'), '- targets: ["reader:9464"]\n');
    writeFileSync(join(dir, 'c.yaml'), 'targets: nope\n');
    expect(metricsTargets(join(dir, 'a.json'))).toEqual(['127.0.0.1:9464', '127.0.0.1:9465', '127.0.0.1:9466']);
    expect(metricsTargets(join(dir, 'b.yaml'))).toEqual(['reader:9464']);
    expect(metricsTargets(undefined)).toEqual([]);
    expect(() => metricsTargets(join(dir, 'c.yaml'))).toThrow(/not a Prometheus file_sd list/);
    expect(() => metricsTargets(join(dir, 'missing.json'))).toThrow(expect.objectContaining({ code: 'CONFIG_NOT_FOUND' }));
  });
});
