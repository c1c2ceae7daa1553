/**
 * Credentials out of log lines and error messages: connection URLs of targets, Redis and
 * brokers carry passwords, and a driver's error text may quote what it was given.
 */
const MASK = '***';

/** The URL with its password replaced (user, host, port, path kept, so it still says where). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = MASK;
    return parsed.toString();
  } catch {
    // Not a URL the WHATWG parser takes: drop anything between "//" and "@".
    return url.replace(/\/\/[^/@]*@/, `//${MASK}@`);
  }
}

/** The password a URL carries, as written and percent-decoded. */
function passwordsOf(url: string): string[] {
  try {
    const raw = new URL(url).password;
    return raw ? [...new Set([raw, decodeURIComponent(raw)])] : [];
  } catch {
    return [];
  }
}

/**
 * `text` with every credential it may quote removed: each URL (as written and redacted),
 * each URL's password, and each plain secret given.
 */
export function withoutSecrets(text: string, { urls = [], secrets = [] }: { urls?: string[]; secrets?: Array<string | undefined> }): string {
  let out = text;
  for (const url of urls) out = out.split(url).join(redactUrl(url));
  const words = [...urls.flatMap(passwordsOf), ...secrets.filter((s): s is string => typeof s === 'string' && s.length > 0)];
  // Longest first, so a secret containing another is replaced whole.
  for (const word of words.sort((a, b) => b.length - a.length)) out = out.split(word).join(MASK);
  return out;
}
