import {
  CdcError,
  SCHEMA_FINGERPRINT_HEADER,
  WireEncoder,
  WriterSchemas,
  deriveShareSchema,
  isCdcError,
  registerValueSchema,
  avroSchemaFingerprint,
  type AvroRecordSchema,
  type Logger,
  type RegistryEndpoint,
  type SchemaRegistry,
  type TableSchema,
} from '@cityshare/shared';
import type { DepartmentView } from './department-views.js';

/** A contract this transformer registered: what it holds to register it again. */
interface Contract {
  topic: string;
  schema: AvroRecordSchema;
  fingerprint: string;
  id: number;
}

export interface SchemaRegistrarOptions {
  registry: SchemaRegistry;
  /** The same registry, for reading back what an id names. */
  endpoint: RegistryEndpoint;
  logger: Logger;
  onRegistered: (topic: string) => void;
  /** A contract the registry had lost was registered again. */
  onReregistered: (topic: string) => void;
}

/**
 * Derives and registers each department view's Avro contract once per table schema,
 * and encodes records with it (Confluent wire format). It keeps every contract it
 * registered, and `verify` (run every TRANSFORMER_REGISTRY_CHECK_MS) registers again those
 * the registry no longer knows under their id (its storage lost or restored from an
 * older backup), so readers waiting on SCHEMA_UNKNOWN find them again.
 */
export class SchemaRegistrar {
  private readonly contracts = new Map<string, Contract>();
  /** Per schema id this transformer registered: the compiled contract that encodes records under it, and their headers. */
  private readonly byId = new Map<number, { encoder: WireEncoder; headers: Record<string, string> }>();
  /** Per view object and table schema object (both stable until a policy or DDL change): the id, without deriving again per record. */
  private known = new WeakMap<DepartmentView, WeakMap<TableSchema, number>>();

  constructor(private readonly options: SchemaRegistrarOptions) {}

  /** The id of a view's contract for a table schema, registered already (nearly every record): without a promise to wait for. */
  knownId(view: DepartmentView, table: TableSchema): number | undefined {
    return this.known.get(view)?.get(table);
  }

  async schemaId(topic: string, view: DepartmentView, table: TableSchema): Promise<number> {
    let byTable = this.known.get(view);
    const cached = byTable?.get(table);
    if (cached !== undefined) return cached;
    const id = await this.register(topic, view, table);
    if (!byTable) this.known.set(view, (byTable = new WeakMap()));
    byTable.set(table, id);
    return id;
  }

  /** Headers of a record written with this schema id: its fingerprint, so readers can check what the id names. */
  headersOf(id: number): Record<string, string> {
    return this.byId.get(id)?.headers ?? {};
  }

  /** Records under `id` are encoded with the contract's schema and carry its fingerprint. */
  private remember(id: number, contract: Contract): void {
    this.byId.set(id, { encoder: new WireEncoder(id, contract.schema), headers: { [SCHEMA_FINGERPRINT_HEADER]: contract.fingerprint } });
  }

  private async register(topic: string, view: DepartmentView, table: TableSchema): Promise<number> {
    const schema = deriveShareSchema(view.department, table, view.rules);
    const cacheKey = `${topic}\u0000${JSON.stringify(schema)}`;
    let contract = this.contracts.get(cacheKey);
    if (!contract) {
      const id = await registerValueSchema(this.options.registry, topic, schema);
      contract = { topic, schema, fingerprint: avroSchemaFingerprint(schema), id };
      this.contracts.set(cacheKey, contract);
      this.remember(id, contract);
      this.options.onRegistered(topic);
    }
    return contract.id;
  }

  /**
   * Asks the registry for every held contract by its id; registers again, under its
   * subject, each it does not have (or has another schema under). Registry failures are
   * logged and left to the next check: records already encode with ids held here.
   */
  async verify(): Promise<void> {
    for (const contract of this.contracts.values()) {
      try {
        const found = await new WriterSchemas(this.options.endpoint).resolve(contract.topic, contract.id, contract.fingerprint).then(() => true, (err: unknown) => {
          if (isCdcError(err, 'SCHEMA_UNKNOWN')) return false;
          throw err;
        });
        if (found) continue;
        const id = await registerValueSchema(this.options.registry, contract.topic, contract.schema);
        this.options.logger.warn({ code: 'SCHEMA_UNKNOWN', topic: contract.topic, oldId: contract.id, id }, 'the registry had lost a contract of this transformer; registered it again');
        this.options.onReregistered(contract.topic);
        if (id !== contract.id) {
          contract.id = id;
          // Records from now on carry the new id.
          this.known = new WeakMap();
        }
        this.remember(id, contract);
      } catch (err) {
        this.options.logger.warn({ code: isCdcError(err) ? err.code : 'REGISTRY_UNREACHABLE', topic: contract.topic, err: (err as Error).message }, 'could not check a contract in the registry; the next check tries again');
      }
    }
  }

  /**
   * Encodes a record under a schema id this registrar registered (schemaId). avsc's own
   * errors quote the offending value, which may be personal data, so only the field names
   * leave this function.
   */
  encode(id: number, value: Record<string, unknown>, topic: string): Buffer {
    const encoder = this.byId.get(id)?.encoder;
    if (!encoder) throw new CdcError('INTERNAL', `schema id ${id} for ${topic} was not registered by this transformer`);
    try {
      return encoder.encode(value);
    } catch (err) {
      const paths = encoder.invalidPaths(value);
      // A value that matches its schema and still does not encode is not the record's fault: the transformer stops.
      if (paths.length === 0) throw new CdcError('INTERNAL', `encoding a record for ${topic} under schema id ${id} failed: ${(err as Error).message}`, { cause: err });
      throw new CdcError('RECORD_INVALID', `record for ${topic} does not match its schema (fields: ${paths.join(', ') || 'unknown'})`, {
        details: { topic, fields: paths },
      });
    }
  }
}
