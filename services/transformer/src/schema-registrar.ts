import { deriveShareSchema, registerValueSchema, type SchemaRegistry, type TableSchema } from '@cityshare/shared';
import type { DepartmentView } from './department-views.js';

/**
 * Derives and registers each department view's Avro contract once per table schema,
 * and encodes records with it (Confluent wire format).
 */
export class SchemaRegistrar {
  private readonly ids = new Map<string, number>();

  constructor(private readonly registry: SchemaRegistry, private readonly onRegistered: (topic: string) => void) {}

  async schemaId(topic: string, view: DepartmentView, table: TableSchema): Promise<number> {
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

  encode(id: number, value: Record<string, unknown>): Promise<Buffer> {
    return this.registry.encode(id, value);
  }
}
