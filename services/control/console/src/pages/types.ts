/** What the control API answers (services/control/openapi.yaml), as far as the pages read it. */
export interface CatalogView {
  sources: Array<{ name: string; connection?: { host?: string; port?: number | string; user?: string }; tables: Array<{ name: string; columns: Record<string, string>; appendOnly?: boolean }> }>;
  departments: Array<{ name: string; target: { kind: string } }>;
}

export interface Grant {
  id: number;
  department: string;
  table: string;
  spec: { columns: Record<string, unknown>; filter?: string; filterReads?: string[] };
  purpose: string;
  expiresAt: string | null;
  status: 'requested' | 'approved' | 'rejected' | 'revoked' | 'expired';
  requestedBy: string;
  decidedBy: string | null;
  reason: string | null;
}

export interface LedgerEntry {
  seq: number;
  at: string;
  actor: string;
  role: string;
  action: string;
  subject: string;
  details: Record<string, unknown>;
}

export const CLASSES = ['public', 'internal', 'personal', 'secret'] as const;

/** Names as the catalog writes them may hold `${NAME:-default}`: shown and used as their defaults. */
export const plainName = (name: string) => name.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1');
