import { createConnection } from 'mysql2/promise';
import { TableCatalog } from '@cityshare/cdc-reader/table-catalog';
import { CdcError, isCdcError, parsePipeline, resolveTlsFiles, sourceConnectionOptions, type PipelineConfig } from '@cityshare/shared';
import type { CatalogDocument } from './catalog.js';

/** A table of the catalog by its position: `sources[source].tables[table]`. */
export interface TableAt {
  source: number;
  table: number;
}

/**
 * The catalog checks the source before it registers or reclassifies a table: through the
 * source's own connection settings (those the reader uses, resolved in the control plane's
 * environment), each table exists and the reader's account can see it, has a primary key
 * (or is registered append-only), and has every column given a class. What the reader would
 * refuse at start (TABLE_NOT_FOUND, TABLE_WITHOUT_KEY) is refused here, with every problem
 * listed, and nothing changes.
 */
export async function probeTables(doc: CatalogDocument, tables: TableAt[], render: (doc: CatalogDocument) => string, publishedDir: string): Promise<void> {
  if (tables.length === 0) return;
  // Rendered and parsed like the published policy: same order, names and connection resolved,
  // files (the source's CA) relative to where the policy is published.
  // Never with the control service's own settings: a source written as `host: ${CONTROL_DB_URL}`
  // must not carry them to the source or into an error message.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('CONTROL_')));
  const config: PipelineConfig = parsePipeline(render(doc), env);
  resolveTlsFiles(config, publishedDir);
  const problems: CdcError[] = [];
  for (const [index, source] of config.sources.entries()) {
    const mine = tables.filter((t) => t.source === index).map((t) => source.tables[t.table]!);
    if (mine.length === 0) continue;
    const conn = await createConnection(sourceConnectionOptions(source)).catch((cause: Error & { code?: string }) => {
      // The driver's code only: its message may quote the host, user or other resolved values.
      throw new CdcError('SOURCE_UNREACHABLE', `source ${source.name} did not answer, so its tables could not be checked (${cause.code ?? 'connection failed'}); try again when it answers, or start the control service with CONTROL_SOURCE_CHECK=off to register without the check`);
    });
    // A lost connection rejects the query; the 'error' event has nothing more to say.
    conn.on('error', () => undefined);
    try {
      const described = await TableCatalog.load(conn, { ...source, tables: mine }).catch((err: unknown) => {
        if (!isCdcError(err)) throw err;
        problems.push(err);
        return undefined;
      });
      for (const t of described ? mine : []) {
        const [db, name] = t.name.split('.') as [string, string];
        const columns = new Set(described!.get(db, name)!.columns.map((c) => c.name));
        const unknown = Object.keys(t.columns).filter((c) => !columns.has(c));
        if (unknown.length > 0) problems.push(new CdcError('CONFIG_INVALID', `${source.name}.${t.name} has no column ${unknown.join(', ')} (its columns: ${[...columns].join(', ')})`));
      }
    } finally {
      await conn.end().catch(() => undefined);
    }
  }
  if (problems.length === 1) throw problems[0]!;
  if (problems.length > 1) {
    const messages = problems.map((p) => `${p.code}: ${p.message}`);
    throw new CdcError(problems[0]!.code, `the source does not hold what the catalog would say:\n  - ${messages.join('\n  - ')}`, { details: { problems: messages } });
  }
}
