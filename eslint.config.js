import { readFileSync } from 'node:fs';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const dependencies = (pkg) => Object.keys(JSON.parse(readFileSync(new URL(`./${pkg}/package.json`, import.meta.url), 'utf8')).dependencies ?? {});
const sharedDependencies = new Set(dependencies('packages/shared'));
/** Client libraries of the sink that processes importing @cityshare/shared alone do not load. */
const sinkDrivers = dependencies('services/sink').filter((d) => !d.startsWith('@cityshare/') && !sharedDependencies.has(d));

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'deploy/local/.cache/**', '.stack/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', Buffer: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly', fetch: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    // The target registry is imported wherever target settings are checked (control plane, CLI,
    // npm run schemas): a target loads its driver in connect() (await import), not at import.
    files: ['services/sink/src/targets/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        patterns: [{ group: sinkDrivers.flatMap((d) => [d, `${d}/*`]), allowTypeImports: true, message: 'load a driver in connect() (await import): target files are imported to check settings (see target-definition.ts)' }],
      }],
    },
  },
  {
    files: ['scripts/**', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
);
