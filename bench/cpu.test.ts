import { describe, expect, it } from 'vitest';
import { cpuPerRow, cpuSnapshot, stageOf, type CpuSnapshot } from './cpu.js';
import { cpuTable, medianCpu } from './report.js';

describe('CPU per row change by process', () => {
  it('names the processes of the pipeline and its stack from their command lines', () => {
    expect(stageOf('node --max-old-space-size=256 /work/main/services/sink/dist/main.mjs', 'node', 1)).toBe('sink');
    expect(stageOf('node /x/services/cdc-reader/dist/main.mjs', 'node', 1)).toBe('cdc-reader');
    expect(stageOf('java -Xmx768m -cp /x/libs/* kafka.Kafka /x/server.properties', 'java', 1)).toBe('kafka');
    expect(stageOf('java -cp /x/* org.apache.kafka.connect.cli.ConnectStandalone w.properties', 'java', 1)).toBe('kafka_connect');
    expect(stageOf('java -jar /x/apicurio-3.3.3/quarkus-run.jar', 'java', 1)).toBe('registry');
    expect(stageOf('mariadbd --no-defaults --datadir=/work/main/.stack/mariadb/data', 'mariadbd', 1)).toBe('mariadb');
    // The machine's own MariaDB (no binlog) is not the source.
    expect(stageOf('/usr/sbin/mariadbd', 'mariadbd', 1)).toBeUndefined();
    expect(stageOf('postgres: 15/main: postgres test 127.0.0.1(5) idle', 'postgres', 1)).toBe('postgresql');
    expect(stageOf('node anything', 'node', process.pid)).toBe('bench');
    expect(stageOf('sshd: root', 'sshd', 1)).toBeUndefined();
  });

  it('reads this process from /proc, and its CPU grows with work', () => {
    const before = cpuSnapshot();
    const start = Date.now();
    let x = 0;
    while (Date.now() - start < 200) x += Math.sqrt(x + 1);
    const after = cpuSnapshot();
    expect(before.get(process.pid)?.stage).toBe('bench');
    expect(after.get(process.pid)!.seconds - before.get(process.pid)!.seconds).toBeGreaterThan(0.1);
  });

  it('divides each stage by the rows: processes started meanwhile count from zero, ended ones are left out', () => {
    const before: CpuSnapshot = new Map([
      [10, { stage: 'transformer', seconds: 5 }],
      [11, { stage: 'postgresql', seconds: 1 }],
      [12, { stage: 'postgresql', seconds: 2 }],
    ]);
    const after: CpuSnapshot = new Map([
      [10, { stage: 'transformer', seconds: 7 }],
      [11, { stage: 'postgresql', seconds: 1.5 }],
      [13, { stage: 'postgresql', seconds: 0.25 }],
    ]);
    expect(cpuPerRow(before, after, 10_000)).toEqual({ transformer: 200, postgresql: 75, total: 275 });
  });

  it('takes the median of the runs per process and writes one row per process', () => {
    const cpu = medianCpu([
      { burst: { sink: 30, transformer: 100, total: 130 }, steady: { sink: 40, total: 40 } },
      { burst: { sink: 50, transformer: 140, total: 190 }, steady: { sink: 60, total: 60 } },
      { burst: { transformer: 120, total: 120 }, steady: { sink: 50, total: 50 } },
    ])!;
    expect(cpu.burst).toEqual({ transformer: 120, sink: 30, total: 130 });
    expect(Object.keys(cpu.burst).at(-1)).toBe('total');
    expect(medianCpu([])).toBeNull();
    const table = cpuTable({ ours: cpu }, 5000);
    expect(table[0]).toBe('| process | ours, saturation | ours, 5,000 rows/s |');
    expect(table).toContain('| transformer | 120 | — |');
    expect(table.at(-1)).toBe('| total | 130 | 50 |');
  });
});
