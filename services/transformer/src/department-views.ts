import { compileGrant, type ColumnRule, type PipelineConfig, type RowFilter, type TableConfig } from '@cityshare/shared';

/** One department's grant on one source table, compiled. */
export interface DepartmentView {
  department: string;
  rules: ColumnRule[];
  /** Rows outside it are not shared with the department. */
  filter?: RowFilter | undefined;
}

/** For each `source.db.table`, the departments that receive it and how. */
export function departmentViews(config: PipelineConfig): Map<string, DepartmentView[]> {
  const tables = new Map<string, TableConfig>(config.sources.flatMap((s) => s.tables.map((t) => [`${s.name}.${t.name}`, t] as const)));
  const views = new Map<string, DepartmentView[]>();
  for (const dept of config.departments) {
    for (const grant of dept.grants) {
      const table = tables.get(grant.table as string);
      if (!table) continue;
      let list = views.get(grant.table);
      if (!list) views.set(grant.table, (list = []));
      list.push({ department: dept.name, ...compileGrant(grant, table) });
    }
  }
  return views;
}
