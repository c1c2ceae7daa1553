/**
 * The console's only way to the control plane: the control API, under the session cookie
 * (HttpOnly: this code never sees it) with the CSRF token on every change. The console has
 * no power of its own: whatever it shows or changes, the API decided for the signed-in role.
 */

export interface Principal {
  name: string;
  role: 'dba' | 'security-officer' | 'department' | 'sre' | 'auditor' | 'service';
  department?: string;
  operations: string[];
}

/** An answer that is not a success: the API's code, message, action and problems. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly action: string,
    readonly problems: string[] = [],
  ) {
    super(message);
  }
}

/** The session and its CSRF token; the token lives in memory only (gone with the tab). */
export class Api {
  private csrfToken = '';
  principal: Principal | null = null;

  /** Reads the session (whether someone is signed in) and a CSRF token. */
  async session(): Promise<Principal | null> {
    const s = await this.call<{ principal: Principal | null; csrfToken: string }>('GET', '/console/session');
    this.csrfToken = s.csrfToken;
    this.principal = s.principal;
    return s.principal;
  }

  /** Signs in with a token (sent once, in the body; never kept). */
  async signIn(token: string): Promise<Principal> {
    const s = await this.call<{ principal: Principal; csrfToken: string }>('POST', '/console/session', { token });
    this.csrfToken = s.csrfToken;
    this.principal = s.principal;
    return s.principal;
  }

  async signOut(): Promise<void> {
    const s = await this.call<{ csrfToken: string }>('POST', '/console/session/end', {});
    this.csrfToken = s.csrfToken;
    this.principal = null;
  }

  may(operation: string): boolean {
    return this.principal?.operations.includes(operation) ?? false;
  }

  get<T>(path: string, query: Record<string, string | number | undefined> = {}): Promise<T> {
    const params = new URLSearchParams(Object.entries(query).filter((e): e is [string, string | number] => e[1] !== undefined && e[1] !== '').map(([k, v]) => [k, String(v)]));
    const qs = params.toString();
    return this.call<T>('GET', qs ? `${path}?${qs}` : path);
  }

  post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  private async call<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    const res = await fetch(path, {
      method,
      credentials: 'same-origin',
      headers: { accept: 'application/json', ...(method === 'POST' ? { 'content-type': 'application/json', 'x-csrf-token': this.csrfToken } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      if (res.status === 401 && path !== '/console/session') this.principal = null;
      throw new ApiError(res.status, String(json.code ?? 'INTERNAL'), String(json.message ?? res.statusText), String(json.action ?? ''), Array.isArray(json.problems) ? json.problems.map(String) : []);
    }
    return json as T;
  }
}
