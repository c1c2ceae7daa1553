import type { DepartmentConfig, Logger } from '@cityshare/shared';
import { MysqlTarget } from './mysql.target.js';
import { PostgresTarget } from './postgres.target.js';
import type { Target } from './target.js';

export type { Target } from './target.js';

/** The department's database target as its pipeline file describes it. */
export function createTarget(target: DepartmentConfig['target'], logger: Logger): Target {
  switch (target.kind) {
    case 'postgres': return new PostgresTarget({ url: target.url, schema: target.schema, softDelete: target.softDelete }, logger);
    case 'mysql': return new MysqlTarget({ url: target.url, softDelete: target.softDelete }, logger);
  }
}
