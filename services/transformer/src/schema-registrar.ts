import { CdcError, deriveShareSchema, registerValueSchema, type SchemaRegistry, type TableSchema } from '@cityshare/shared';
import type { DepartmentView } from './department-views.js';

/**
 * Derives and registers each department view's Avro contract once per table schema,
 * and encodes records with it (Confluent wire format).
 */
export class SchemaRegistrar {
  private readonly ids = new Map<string, number>();
  /** Per view object and table schema object (both stable until a policy or DDL change): the id, without deriving again per record. */
  private readonly known = new WeakMap<DepartmentView, WeakMap<TableSchema, number>>();

  constructor(private readonly registry: SchemaRegistry, private readonly onRegistered: (topic: string) => void) {}

  async schemaId(topic: string, view: DepartmentView, table: TableSchema): Promise<number> {
    let byTable = this.known.get(view);
    const cached = byTable?.get(table);
    if (cached !== undefined) return cached;
    const id = await this.register(topic, view, table);
    if (!byTable) this.known.set(view, (byTable = new WeakMap()));
    byTable.set(table, id);
    return id;
  }

  private async register(topic: string, view: DepartmentView, table: TableSchema): Promise<number> {
    const schema = deriveShareSchema(view.department, table, view.rules);
    const cacheKey = `${topic}\u0000${JSON.stringify(schema)}`;
    let id = this.ids.get(cacheKey);
    if (id === undefined) {
      id = await registerValueSchema(this.registry, topic, schema);
      this.ids.set(cacheKey, id);
      this.onRegistered(topic);
    }
    return id;
  }

  /**
   * Encodes a record. avsc's own errors quote the offending value, which may be
   * personal data, so only the field names leave this function.
   */
  async encode(id: number, value: Record<string, unknown>, topic: string): Promise<Buffer> {
    try {
      return await this.registry.encode(id, value);
    } catch (err) {
      const paths = ((err as { paths?: string[][] }).paths ?? []).map((p) => p.join('.'));
      throw new CdcError('RECORD_INVALID', `record for ${topic} does not match its schema (fields: ${paths.join(', ') || 'unknown'})`, {
        details: { topic, fields: paths },
      });
    }
  }
}
