import ZongJi, {
  type BinlogEvent,
  type DeleteRowsEvent,
  type QueryEvent,
  type TableMapEvent,
  type UpdateRowsEvent,
  type WriteRowsEvent,
} from '@vlasky/zongji';
import { CdcError, logicalTypeOf, type BinlogPosition, type Logger, type RepairTag, type TableSchema } from '@cityshare/shared';
import type { ConnectionOptions } from 'mysql2';
import { isDdl } from './ddl-statement.js';
import type { TableCatalog } from './table-catalog.js';

export interface RowsChange {
  /**
   * `snapshot` rows come from a chunk read, not from the binlog; `repair` rows from a repair's
   * read of named keys (snapshot/key-repair.ts): a row found (after) or a delete (before).
   */
  kind: 'insert' | 'update' | 'delete' | 'snapshot' | 'repair';
  schema: TableSchema;
  /**
   * insert/delete: one image per row; update: before and after. A repair's delete of a
   * department row by its share key has `shareKey` and a before image of nulls.
   */
  rows: Array<{ before: Record<string, unknown> | null; after: Record<string, unknown> | null; shareKey?: string }>;
  file: string;
  eventPos: number;
  gtid: string | null;
  tsMs: number;
  /** Row changes of the same transaction before this event's first row. */
  txOffset: number;
  /** A repair's department and request, and the stamp that orders its versions (position.ts repairVersion). */
  repair?: RepairTag & { stamp: number };
}

/** What a committed transaction changed in the registered tables. */
export interface TransactionSummary {
  gtid: string | null;
  events: number;
  /** Row changes per `db.table`. */
  tables: Record<string, number>;
}

/** The narrow interface between the binlog and whatever consumes it. */
export interface BinlogHandler {
  onRows(change: RowsChange): void;
  /** A transaction ended; `position` is where a restart resumes after it. */
  onCommit(position: BinlogPosition, tsMs: number, summary: TransactionSummary): void;
  onSchemaChange(db: string, statement: string, position: BinlogPosition, tsMs: number): void;
  /** The server had nothing to send for a heartbeat period: the stream is at `position`, the binlog end. */
  onHeartbeat(position: BinlogPosition): void;
  onError(error: CdcError): void;
}

export interface ListenerOptions {
  /** Host, account and TLS of the source (sourceConnectionOptions): zongji opens its two mysql2 connections with them. */
  connection: ConnectionOptions;
  valueOptions: Record<string, unknown>;
  serverId: number;
  catalog: TableCatalog;
  /** Asks the server for a heartbeat event after this many idle seconds; 0 for none. */
  heartbeatSeconds: number;
}

/**
 * Streams row changes of the registered tables from the binlog, as a replica would,
 * with zongji. Table schemas come from each table map (binlog_row_metadata=FULL), so
 * every row is decoded with the columns in force when it was written.
 */
export class BinlogListener {
  private zongji: ZongJi | undefined;
  private readonly primaryKeys = new Map<number, string[] | undefined>();
  private readonly schemas = new Map<number, { source: unknown; schema: TableSchema }>();
  /** Schemas by table, key and binlog columns; with the catalog entry they were refined with. */
  private readonly bySignature = new Map<string, { registered: TableSchema; schema: TableSchema }>();
  private paused = false;
  private txRows = 0;
  private txTables: Record<string, number> = {};

  constructor(
    private readonly options: ListenerOptions,
    private readonly handler: BinlogHandler,
    private readonly logger: Logger,
  ) {}

  start(from: BinlogPosition): Promise<void> {
    // Exact values: dates as strings (microseconds kept), UTC for TIMESTAMP, 64-bit
    // integers and decimals as strings; snapshot reads use the same options.
    const zongji = new ZongJi({ ...this.options.connection, ...this.options.valueOptions });
    this.zongji = zongji;
    const includeSchema: Record<string, string[]> = {};
    for (const name of this.options.catalog.names()) {
      const [db, table] = name.split('.') as [string, string];
      (includeSchema[db] ??= []).push(table);
    }
    return new Promise((resolve, reject) => {
      let ready = false;
      zongji.on('ready', () => {
        ready = true;
        this.logger.info({ file: from.file, pos: from.pos }, 'binlog stream started');
        resolve();
      });
      zongji.on('error', (err: Error & { errno?: number; code?: string }) => {
        const error = classifyBinlogError(err);
        if (!ready) reject(error);
        else this.handler.onError(error);
      });
      zongji.on('binlog', (evt: BinlogEvent) => this.dispatch(evt));
      zongji.start({
        serverId: this.options.serverId,
        filename: from.file,
        position: from.pos,
        includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows', 'xid', 'query', 'rotate', 'heartbeat'],
        includeSchema,
        // GEOMETRY as stored (SRID + WKB), as a snapshot reads it (patches/@vlasky+zongji+*.patch).
        geometryBuffers: true,
      });
      if (this.options.heartbeatSeconds > 0) {
        // start() opened the binlog connection; the dump command is queued on it only after
        // the server checks, so this session variable is set when the server reads it.
        // MySQL 8.0.26+ reads the `source_` name; MariaDB and older MySQL the `master_` one.
        const ns = Math.round(this.options.heartbeatSeconds * 1e9);
        zongji.connection!.query(`SET @master_heartbeat_period = ${ns}, @source_heartbeat_period = ${ns}`);
      }
    });
  }

  /** Stops reading from the server; events already in flight still arrive. */
  pause(): void {
    if (this.paused || !this.zongji?.connection) return;
    this.paused = true;
    this.zongji.connection.pause();
  }

  resume(): void {
    if (!this.paused || !this.zongji?.connection) return;
    this.paused = false;
    this.zongji.connection.resume();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  stop(): void {
    this.zongji?.stop();
  }

  /** The resume point after the last transaction the stream has fully processed. */
  safePosition(): BinlogPosition | undefined {
    const z = this.zongji;
    return z?.options.filename && z.options.position ? { file: z.options.filename, pos: z.options.position, gtid: z.gtidSet } : undefined;
  }

  private position(nextPosition?: number): BinlogPosition {
    const z = this.zongji!;
    return { file: z.options.filename!, pos: nextPosition ?? z.options.position!, gtid: z.gtidSet };
  }

  private dispatch(evt: BinlogEvent): void {
    switch (evt.getEventName()) {
      case 'tablemap': {
        const tm = evt as TableMapEvent;
        this.primaryKeys.set(tm.tableId, tm.primaryKey?.map((i) => tm.columnNames?.[i] ?? ''));
        return;
      }
      case 'writerows':
        return this.rows('insert', evt as WriteRowsEvent, (r) => ({ before: null, after: r as Record<string, unknown> }));
      case 'deleterows':
        return this.rows('delete', evt as DeleteRowsEvent, (r) => ({ before: r as Record<string, unknown>, after: null }));
      case 'updaterows':
        return this.rows('update', evt as UpdateRowsEvent, (r) => r as { before: Record<string, unknown>; after: Record<string, unknown> });
      case 'xid':
        // zongji moves options.position to the end of the commit before emitting it.
        return this.handler.onCommit(this.position(), evt.timestamp, this.endTransaction(evt.gtid ?? null));
      case 'heartbeat':
        if (this.txRows === 0) this.handler.onHeartbeat(this.position());
        return;
      case 'query': {
        const q = evt as QueryEvent;
        if (isDdl(q.query)) {
          const summary = this.endTransaction(evt.gtid ?? null);
          this.handler.onSchemaChange(q.schema, q.query, this.position(), evt.timestamp);
          this.handler.onCommit(this.position(), evt.timestamp, summary);
        }
        return;
      }
      default:
        return;
    }
  }

  private rows<R>(
    kind: RowsChange['kind'],
    evt: BinlogEvent & { tableId: number; tableMap: Record<number, { columnSchemas: Array<{ COLUMN_NAME: string; COLUMN_TYPE: string; CHARACTER_SET_NAME: string | null }>; parentSchema: string; tableName: string }>; rows: R[] },
    toImage: (row: R) => RowsChange['rows'][number],
  ): void {
    const schema = this.schemaOf(evt.tableId, evt.tableMap[evt.tableId]!);
    if (!schema) return;
    this.handler.onRows({
      kind,
      schema,
      rows: evt.rows.map(toImage),
      file: this.zongji!.options.filename!,
      eventPos: evt.nextPosition,
      gtid: evt.gtid ?? null,
      tsMs: evt.timestamp,
      txOffset: this.txRows,
    });
    this.txRows += evt.rows.length;
    const table = `${schema.db}.${schema.table}`;
    this.txTables[table] = (this.txTables[table] ?? 0) + evt.rows.length;
  }

  private endTransaction(gtid: string | null): TransactionSummary {
    const summary = { gtid, events: this.txRows, tables: this.txTables };
    this.txRows = 0;
    this.txTables = {};
    return summary;
  }

  /** Schema at this binlog position: columns from the table map, key from its metadata. */
  private schemaOf(
    tableId: number,
    entry: { columnSchemas: Array<{ COLUMN_NAME: string; COLUMN_TYPE: string; CHARACTER_SET_NAME: string | null }>; parentSchema: string; tableName: string },
  ): TableSchema | undefined {
    const cached = this.schemas.get(tableId);
    if (cached && cached.source === entry.columnSchemas) return cached.schema;
    const registered = this.options.catalog.get(entry.parentSchema, entry.tableName);
    if (!registered) return undefined;
    // Every transaction brings a table map of its own: the same columns give the same schema
    // object, so what is compiled per schema (encoders, schema references) is reused.
    const signature = JSON.stringify([entry.parentSchema, entry.tableName, this.primaryKeys.get(tableId), entry.columnSchemas.map((c) => [c.COLUMN_NAME, c.COLUMN_TYPE, c.CHARACTER_SET_NAME])]);
    const same = this.bySignature.get(signature);
    if (same && same.registered === registered) {
      this.schemas.set(tableId, { source: entry.columnSchemas, schema: same.schema });
      return same.schema;
    }
    const known = new Map(registered.columns.map((c) => [c.name, c]));
    const schema: TableSchema = {
      db: entry.parentSchema,
      table: entry.tableName,
      primaryKey: this.primaryKeys.get(tableId)?.filter(Boolean) ?? registered.primaryKey,
      columns: entry.columnSchemas.map((c) => {
        const fromBinlog = logicalTypeOf(c.COLUMN_TYPE, c.CHARACTER_SET_NAME);
        const current = known.get(c.COLUMN_NAME);
        // The binlog cannot tell MariaDB UUID/INET from BINARY, or JSON from LONGTEXT; the catalog can.
        const refined = current && ((fromBinlog.kind === 'bytes' && (current.type.kind === 'uuid' || current.type.kind === 'inet')) || (fromBinlog.kind === 'string' && current.type.kind === 'json'));
        const type = refined ? current.type : fromBinlog;
        return { name: c.COLUMN_NAME, type, sourceType: current?.sourceType ?? c.COLUMN_TYPE, nullable: current?.nullable ?? true };
      }),
    };
    if (schema.primaryKey.length === 0) schema.primaryKey = registered.primaryKey;
    this.schemas.set(tableId, { source: entry.columnSchemas, schema });
    this.bySignature.set(signature, { registered, schema });
    return schema;
  }
}

/** Maps server error numbers to codes; retriable ones let the reader reconnect. */
export function classifyBinlogError(err: Error & { errno?: number; code?: string }): CdcError {
  // MariaDB refuses a second replica with the same id (4052, "… is already connected"); MySQL
  // drops the older one (1236, every fatal binlog read error: the text says which).
  if (/same server_uuid\/server_id|same server_id/i.test(err.message)) {
    return new CdcError('SERVER_ID_CONFLICT', `the source dropped this binlog connection: ${err.message}`, { cause: err, details: { errno: err.errno } });
  }
  switch (err.errno) {
    case 1236:
    case 1945:
    case 1955:
      return new CdcError('BINLOG_PURGED', `the binlog position is no longer available on the source: ${err.message}`, { cause: err });
    case 1045:
    case 1227:
    case 1044:
      return new CdcError('SOURCE_PRIVILEGES', `the source refused the reader account: ${err.message}`, { cause: err });
    default:
      return new CdcError('SOURCE_UNREACHABLE', `binlog connection failed: ${err.message}`, { cause: err, details: { errno: err.errno, sqlCode: err.code } });
  }
}
