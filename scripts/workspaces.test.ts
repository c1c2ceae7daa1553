import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * Package hygiene: each workspace declares what it imports (nothing works only because npm
 * hoisted another workspace's dependency), points its package.json at files that exist, and
 * reaches other workspaces only through their `exports`; scripts and the benchmark share
 * with the tests only what lives outside test/.
 */
const root = fileURLToPath(new URL('..', import.meta.url));

interface Manifest {
  name: string;
  main?: string;
  bin?: Record<string, string>;
  exports?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const workspaces = ['packages', 'services'].flatMap((group) => readdirSync(join(root, group)).map((name) => join(root, group, name))).filter((dir) => existsSync(join(dir, 'package.json')));
const manifestOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;
const byName = new Map(workspaces.map((dir) => [manifestOf(dir).name, dir]));

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|js|mjs)$/.test(f) && !f.split('/').includes('node_modules'))
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile());
}

/** Every module a file imports or re-exports, and whether only its types are used. */
function importsOf(file: string): Array<{ specifier: string; typeOnly: boolean }> {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: Array<{ specifier: string; typeOnly: boolean }> = [];
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const typeOnly = ts.isImportDeclaration(node) ? Boolean(node.importClause?.isTypeOnly) : node.isTypeOnly;
      found.push({ specifier: node.moduleSpecifier.text, typeOnly });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      found.push({ specifier: node.arguments[0].text, typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const packageOf = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
const isRelative = (specifier: string) => specifier.startsWith('.');

describe('workspace packages', () => {
  it('finds the workspaces', () => {
    expect([...byName.keys()]).toEqual(expect.arrayContaining(['@cityshare/shared', '@cityshare/cli', '@cityshare/cdc-reader', '@cityshare/transformer', '@cityshare/sink', '@cityshare/control']));
  });

  it('each declares every package its code imports: at run time in dependencies, types alone at least in devDependencies', () => {
    const undeclared: string[] = [];
    for (const dir of workspaces) {
      const m = manifestOf(dir);
      const runtime = new Set(Object.keys({ ...m.dependencies, ...m.peerDependencies }));
      const any = new Set([...runtime, ...Object.keys(m.devDependencies ?? {})]);
      for (const file of [...tsFiles(join(dir, 'src')), ...tsFiles(join(dir, 'bin'))]) {
        for (const { specifier, typeOnly } of importsOf(file)) {
          if (isRelative(specifier) || isBuiltin(specifier)) continue;
          const name = packageOf(specifier);
          if (!(typeOnly ? any : runtime).has(name)) undeclared.push(`${relative(root, file)}: ${specifier} (${typeOnly ? 'types' : 'run time'})`);
        }
      }
    }
    expect(undeclared).toEqual([]);
  });

  it("points main, bin and exports at files that exist", () => {
    const missing: string[] = [];
    for (const dir of workspaces) {
      const m = manifestOf(dir);
      const targets = [m.main, ...Object.values(m.bin ?? {}), ...Object.values(m.exports ?? {})].filter((t): t is string => t !== undefined);
      for (const target of targets) if (!existsSync(join(dir, target))) missing.push(`${relative(root, dir)}/package.json: ${target}`);
    }
    expect(missing).toEqual([]);
  });

  it("reaches another workspace only through an entry of its exports, never by a path into it", () => {
    const wrong: string[] = [];
    for (const dir of workspaces) {
      for (const file of [...tsFiles(join(dir, 'src')), ...tsFiles(join(dir, 'bin'))]) {
        for (const { specifier } of importsOf(file)) {
          if (isRelative(specifier)) {
            if (relative(dir, resolve(dirname(file), specifier)).startsWith('..')) wrong.push(`${relative(root, file)}: ${specifier} leaves its workspace`);
            continue;
          }
          const other = byName.get(packageOf(specifier));
          if (!other) continue;
          const entry = `.${specifier.slice(packageOf(specifier).length)}`;
          if (!Object.keys(manifestOf(other).exports ?? {}).includes(entry)) wrong.push(`${relative(root, file)}: ${specifier} is not in the exports of ${packageOf(specifier)}`);
        }
      }
    }
    expect(wrong).toEqual([]);
  });

  it('scripts/ and bench/ import nothing from test/', () => {
    const intoTests: string[] = [];
    for (const file of [...tsFiles(join(root, 'scripts')), ...tsFiles(join(root, 'bench'))]) {
      for (const { specifier } of importsOf(file)) {
        if (isRelative(specifier) && relative(root, resolve(dirname(file), specifier)).startsWith('test/')) intoTests.push(`${relative(root, file)}: ${specifier}`);
      }
    }
    expect(intoTests).toEqual([]);
  });
});
