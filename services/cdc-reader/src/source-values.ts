/**
 * Value options of every connection that reads source rows (the binlog decoder, snapshot
 * chunks, the verifier), so all of them yield the same values for the same data.
 */
export const exactValueOptions = {
  dateStrings: true,
  timezone: 'Z',
  supportBigNumbers: true,
  bigNumberStrings: true,
  // JSON as the exact text stored (big integers intact), never parsed.
  jsonStrings: true,
  charset: 'utf8mb4',
} as const;
