import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parsePipeline } from '../src/config/load-pipeline.js';
import { isCdcError } from '../src/errors.js';
import { parseShareTopic, pipelineTopics, topics } from '../src/topics.js';

const sample = readFileSync(new URL('../../../deploy/local/pipeline.yaml', import.meta.url), 'utf8');
/** The demo pipeline names each process's Kafka principal in its environment. */
const principal = { KAFKA_USERNAME: 'transformer', KAFKA_PASSWORD_FILE: '/run/secrets/kafka' };

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parsePipeline(text, { ...principal, ...env });
    return [];
  } catch (err) {
    if (!isCdcError(err, 'CONFIG_INVALID')) throw err;
    return err.details.problems as string[];
  }
}

describe('pipeline file', () => {
  it('loads the demo pipeline with defaults and typed environment overrides', () => {
    const config = parsePipeline(sample, { ...principal, SOURCE_PORT: '3310', TOPIC_PREFIX: 'x1' });
    expect(config.sources[0]!.connection.port).toBe(3310);
    expect(config.kafka.topicPrefix).toBe('x1');
    expect(config.departments[0]!.grants[0]!.columns.phone).toEqual({ mask: 'phone' });
  });

  it('takes a cluster from one variable: comma-separated brokers, IPv6 in brackets; refuses one without a port', () => {
    const brokers = (KAFKA_BROKERS: string) => parsePipeline(sample, { ...principal, KAFKA_BROKERS }).kafka.brokers;
    expect(brokers('k1:9092, k2:9094,[::1]:9096')).toEqual(['k1:9092', 'k2:9094', '[::1]:9096']);
    expect(problems(sample, { KAFKA_BROKERS: 'k1:9092,k2' })).toEqual([expect.stringMatching(/kafka\.brokers.*host:port/)]);
  });

  it('refuses one table granted twice to one department (they would share one share topic)', () => {
    const twice = sample.replace('    grants:\n      - table: cityhub.${CIVIL_DB:-civil}.citizens\n', '    grants:\n      - table: cityhub.${CIVIL_DB:-civil}.citizens\n        targetTable: citizens_again\n        columns: { id: pass }\n      - table: cityhub.${CIVIL_DB:-civil}.citizens\n');
    expect(problems(twice)).toEqual([expect.stringMatching(/cityhub\.civil\.citizens is granted to health twice; one grant per table/)]);
  });

  it('names share topics by department and source table, and reads them back', () => {
    expect(topics.share('demo', 'health', 'cityhub', 'civil', 'citizens')).toBe('demo.share.health.cityhub.civil.citizens');
    expect(parseShareTopic('city.prod.share.health.cityhub.civil.citizens')).toEqual({ department: 'health', source: 'cityhub', db: 'civil', table: 'citizens' });
    expect(parseShareTopic('demo.raw.cityhub.civil.citizens')).toBeNull();
    const planned = pipelineTopics(parsePipeline(sample, principal));
    expect(planned.share.get('health')).toContain('demo.share.health.cityhub.civil.citizens');
  });

  it('lists every problem at once', () => {
    const broken = sample
      .replace('    # No serverId:', '    serverId: -1\n    # No serverId:')
      .replace('phone: { mask: phone }', 'phone: { mask: phone }\n          shoe_size: pass')
      .replace('id_card: encrypt', 'id_card: rot13');
    const found = problems(broken);
    expect(found.length).toBeGreaterThanOrEqual(2);
    expect(found.join('\n')).toMatch(/serverId/);
    expect(found.join('\n')).toMatch(/id_card/);
  });

  it('refuses a grant on a column no DBA classified', () => {
    const found = problems(sample.replace('phone: { mask: phone }', 'phone: { mask: phone }\n          shoe_size: pass'));
    expect(found).toEqual([expect.stringMatching(/column shoe_size is not classified.*classify it/)]);
  });

  it('refuses a grant on an unregistered table', () => {
    const found = problems(sample.replace('- table: cityhub.${CIVIL_DB:-civil}.citizens', '- table: cityhub.civil.nope'));
    expect(found).toEqual([expect.stringMatching(/cityhub\.civil\.nope is not registered/)]);
  });

  it('refuses a row filter on a column the grant does not share unless the grant names it for approval', () => {
    // registered_at is internal and not granted to haidian: the rows that arrive would disclose it.
    const reading = sample.replace('filter: district == "海淀"', 'filter: district == "海淀" && registered_at > "2020"');
    expect(problems(reading)).toEqual([expect.stringMatching(/row filter reads internal column registered_at, which the grant does not share.*filterReads/)]);
    const named = reading.replace('filter: district == "海淀" && registered_at > "2020"', 'filter: district == "海淀" && registered_at > "2020"\n        filterReads: [registered_at]');
    expect(problems(named)).toEqual([]);
    expect(problems(named.replace('filterReads: [registered_at]', 'filterReads: [registered_at, phone]'))).toEqual([expect.stringMatching(/filterReads names phone, which the row filter does not read/)]);
    // A masked column counts as not shared: the filter would tell the whole number.
    expect(problems(sample.replace('filter: district == "海淀"', 'filter: phone == "13812345678"'))).toEqual([expect.stringMatching(/reads personal column phone, which the grant does not share in clear/)]);
  });

  it('names an unset environment variable without a default', () => {
    expect(problems(sample.replace('${SOURCE_PASSWORD:-cdc_reader}', '${SOURCE_PASSWORD}'))).toContain(
      'environment variable SOURCE_PASSWORD is not set and has no default',
    );
  });

  it('reports malformed YAML as CONFIG_INVALID', () => {
    expect(() => parsePipeline('kafka: [unclosed', {})).toThrow(/not valid YAML/);
  });
});
