// The project's structure rules (STYLE.md "Arrows point down", one failure
// vocabulary; DESIGN.md Layout), checked on the source files themselves. Each
// detector is first proven on a planted example, so a green run means a clean tree.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// ── the rules ──

const FOLDERS = ['workflows', 'activities', 'providers', 'workers', 'host', 'client', 'cli', 'common', 'scripts'] as const;
type Folder = (typeof FOLDERS)[number];

/**
 * What each folder may import, STYLE.md's arrows and DESIGN.md's Layout, top to bottom:
 * `scripts/` (tools) → `workers/` (process entry points) → `cli/` (slotctl) → `host/` (the
 * configuration the worker and slotctl both read, tracing, the host services beside the
 * worker) → `client/` (the library services import) → `activities/` → `providers/` → `common/`,
 * and `workflows/ → common/` (activities as types only, for `proxyActivities`). Each folder
 * imports only folders below it: `client/` nothing of `host/`, `cli/` or `workers/`;
 * `cli/` nothing of `workers/`; nothing but `scripts/` imports `workers/`.
 */
const MAY_IMPORT: Record<Folder, { readonly values: readonly Folder[]; readonly typesOnly: readonly Folder[] }> = {
  common: { values: [], typesOnly: [] },
  providers: { values: ['common'], typesOnly: [] },
  activities: { values: ['providers', 'common'], typesOnly: [] },
  workflows: { values: ['common'], typesOnly: ['activities'] },
  // The library a service imports (package.json `exports`): it checks a provider's configuration
  // before a start, so it reads providers/; never worker code, the CLI or host side effects.
  client: { values: ['providers', 'common'], typesOnly: [] },
  // What runs on a slot host beside the worker (agent token service, the host operator's acts on
  // slot files) and what the worker and slotctl both read (configuration, tracing).
  host: { values: ['client', 'activities', 'providers', 'common'], typesOnly: [] },
  // The operator's CLI on top of client/; its host-side commands (hand-over, trash) and the
  // configuration it shares with the worker come from host/, never from workers/.
  cli: { values: ['client', 'host', 'providers', 'common'], typesOnly: [] },
  workers: { values: ['host', 'client', 'workflows', 'activities', 'providers', 'common'], typesOnly: [] },
  scripts: { values: ['workers', 'host', 'client', 'workflows', 'activities', 'providers', 'cli', 'common'], typesOnly: [] },
};

/** Folders whose code runs in (or is shared with) the workflow sandbox. */
const SANDBOXED: readonly Folder[] = ['workflows', 'common'];
const MAX_WORKFLOW_FILE_LINES = 300;
const FAILURE_VOCABULARY = 'common/failures.ts';
/** A literal that reads like one of our failure types. */
const FAILURE_TYPE_LIKE = /^(Login|Refresh|Credential|SlotStatus|Code)[A-Z][A-Za-z]+$/;

// ── reading imports ──

type ImportKind = 'value' | 'type';

interface ImportRef {
  readonly specifier: string;
  readonly kind: ImportKind;
  readonly line: number;
}

const allTypeOnly = (elements: ts.NodeArray<ts.ImportSpecifier | ts.ExportSpecifier>): boolean =>
  elements.length > 0 && elements.every((e) => e.isTypeOnly);

/** Every module specifier a file names: static and dynamic imports, re-exports, `import('…')` types. */
function readImports(fileName: string, text: string): ImportRef[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const refs: ImportRef[] = [];
  const add = (literal: ts.Node, specifier: string, kind: ImportKind): void => {
    refs.push({ specifier, kind, line: source.getLineAndCharacterOfPosition(literal.getStart(source)).line + 1 });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined && clause.namedBindings !== undefined && ts.isNamedImports(clause.namedBindings) && allTypeOnly(clause.namedBindings.elements)));
      add(node.moduleSpecifier, node.moduleSpecifier.text, typeOnly ? 'type' : 'value');
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const typeOnly = node.isTypeOnly || (node.exportClause !== undefined && ts.isNamedExports(node.exportClause) && allTypeOnly(node.exportClause.elements));
      add(node.moduleSpecifier, node.moduleSpecifier.text, typeOnly ? 'type' : 'value');
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      add(node.moduleReference.expression, node.moduleReference.expression.text, node.isTypeOnly ? 'type' : 'value');
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) add(arg, arg.text, 'value');
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      add(node.argument.literal, node.argument.literal.text, 'type');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return refs;
}

const isRelative = (specifier: string): boolean => specifier === '.' || specifier === '..' || specifier.startsWith('./') || specifier.startsWith('../');

/** The project file a relative specifier names (`./x` → x.ts or x/index.ts; `./x.js` → x.ts), or undefined. */
function resolveRelative(from: string, specifier: string, files: ReadonlySet<string>): string | undefined {
  const base = posix.normalize(posix.join(posix.dirname(from), specifier));
  const candidates = /\.[cm]?js$/.test(base)
    ? [base.replace(/\.([cm]?)js$/, '.$1ts'), base]
    : [base, `${base}.ts`, `${base}/index.ts`];
  return candidates.find((c) => files.has(c));
}

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly kind: ImportKind;
  readonly line: number;
}

interface Project {
  /** Source files under the rules, relative to the root, posix separators. */
  readonly files: readonly string[];
  readonly text: ReadonlyMap<string, string>;
  /** Imports of other source files. */
  readonly edges: readonly Edge[];
  /** Imports of packages and builtins. */
  readonly external: readonly (ImportRef & { readonly from: string })[];
  /** Relative imports that name no file. */
  readonly unresolved: readonly string[];
}

const isSourceFile = (file: string): boolean => file.endsWith('.ts') && !/^(test|bench|node_modules)\//.test(file);

function buildProject(listed: readonly string[], read: (file: string) => string): Project {
  const present = new Set(listed);
  const files = [...present].filter(isSourceFile).sort();
  const text = new Map(files.map((f) => [f, read(f)]));
  const edges: Edge[] = [];
  const external: (ImportRef & { from: string })[] = [];
  const unresolved: string[] = [];
  for (const from of files) {
    for (const ref of readImports(from, text.get(from) ?? '')) {
      if (!isRelative(ref.specifier)) {
        external.push({ ...ref, from });
        continue;
      }
      const to = resolveRelative(from, ref.specifier, present);
      if (to === undefined) unresolved.push(`${from}:${ref.line} '${ref.specifier}'`);
      else if (isSourceFile(to)) edges.push({ from, to, kind: ref.kind, line: ref.line });
    }
  }
  return { files, text, edges, external, unresolved };
}

/**
 * Tracked files plus new ones not yet committed (others are writing them now),
 * minus any deleted from the work tree.
 */
function loadProject(): Project {
  const listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f !== '' && existsSync(posix.join(ROOT, f)));
  return buildProject(listed, (f) => readFileSync(posix.join(ROOT, f), 'utf8'));
}

// ── the detectors ──

function graphOf(pairs: Iterable<readonly [string, string]>): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const [from, to] of pairs) {
    const next = graph.get(from) ?? [];
    if (!next.includes(to)) next.push(to);
    graph.set(from, next);
    if (!graph.has(to)) graph.set(to, []);
  }
  for (const next of graph.values()) next.sort();
  return graph;
}

/**
 * One cycle per strongly connected component (Tarjan), the shortest through the
 * component's first node, as `[a, b, a]`.
 */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, counter);
    low.set(v, counter);
    counter++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
      onStack.delete(w);
      component.push(w);
      if (w === v) break;
    }
    components.push(component);
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) connect(v);

  const cycles: string[][] = [];
  for (const component of components) {
    const members = new Set(component);
    const [start] = [...members].sort();
    if (start === undefined || (members.size === 1 && !(graph.get(start) ?? []).includes(start))) continue;
    // Breadth-first inside the component, back to the start.
    const parent = new Map<string, string>();
    const queue = [start];
    let closing: string | undefined;
    while (closing === undefined && queue.length > 0) {
      const u = queue.shift() as string;
      for (const w of graph.get(u) ?? []) {
        if (w === start) {
          closing = u;
          break;
        }
        if (members.has(w) && !parent.has(w)) {
          parent.set(w, u);
          queue.push(w);
        }
      }
    }
    const path = [start];
    for (let u = closing; u !== undefined && u !== start; u = parent.get(u)) path.splice(1, 0, u);
    cycles.push([...path, start]);
  }
  return cycles.sort((a, b) => a.join().localeCompare(b.join()));
}

const formatCycle = (cycle: readonly string[]): string => cycle.join(' → ');

function folderOf(file: string): Folder | undefined {
  const top = file.split('/')[0];
  return (FOLDERS as readonly string[]).includes(top ?? '') && file.includes('/') ? (top as Folder) : undefined;
}

/** Folder-level cycles, each arrow shown with one file import that makes it. */
function folderCycles(edges: readonly Edge[]): string[] {
  const witness = new Map<string, Edge>();
  const pairs: [string, string][] = [];
  for (const edge of edges) {
    const from = folderOf(edge.from);
    const to = folderOf(edge.to);
    if (!from || !to || from === to) continue;
    pairs.push([from, to]);
    if (!witness.has(`${from}>${to}`)) witness.set(`${from}>${to}`, edge);
  }
  return findCycles(graphOf(pairs)).map((cycle) => {
    const arrows = cycle.slice(1).map((to, i) => {
      const from = cycle[i] ?? '';
      const edge = witness.get(`${from}>${to}`);
      return edge ? `${from}/ → ${to}/ (${edge.from}:${edge.line} imports ${edge.to})` : `${from}/ → ${to}/`;
    });
    return `${cycle.map((f) => `${f}/`).join(' → ')}: ${arrows.join('; ')}`;
  });
}

/** Imports that go against MAY_IMPORT. */
function folderRuleBreaks(edges: readonly Edge[]): string[] {
  const breaks: string[] = [];
  for (const edge of edges) {
    const from = folderOf(edge.from);
    const to = folderOf(edge.to);
    if (!from || !to || from === to) continue;
    const rule = MAY_IMPORT[from];
    if (rule.values.includes(to)) continue;
    if (rule.typesOnly.includes(to) && edge.kind === 'type') continue;
    const allowed = [...rule.values.map((f) => `${f}/`), ...rule.typesOnly.map((f) => `${f}/ (import type only)`)].join(', ') || 'nothing';
    const how = rule.typesOnly.includes(to) ? ' as a value' : edge.kind === 'type' ? ' (type only)' : '';
    breaks.push(`${edge.from}:${edge.line} imports ${edge.to}${how}; ${from}/ may import ${allowed}`);
  }
  return breaks;
}

const NODE_BUILTINS = new Set(builtinModules);
const SANDBOX_FORBIDDEN_PACKAGES = /^(@temporalio\/(worker|client|activity|testing)|node-pty|pino)(\/|$)/;

const isNodeBuiltin = (specifier: string): boolean =>
  specifier.startsWith('node:') || NODE_BUILTINS.has(specifier) || NODE_BUILTINS.has(specifier.split('/')[0] ?? '');

/** The failure type names common/failures.ts declares: its PascalCase property values. */
function declaredFailureTypes(text: string): Set<string> {
  const source = ts.createSourceFile(FAILURE_VOCABULARY, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const declared = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAssignment(node) && ts.isStringLiteralLike(node.initializer) && /^[A-Z][A-Za-z0-9]*$/.test(node.initializer.text)) {
      declared.add(node.initializer.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return declared;
}

const FAILURE_FACTORIES = new Set(['create', 'nonRetryable', 'retryable']);

/** The node above any `as const`, `satisfies` or parentheses wrapped around this one. */
function unwrapped(node: ts.Node): ts.Node {
  let current = node;
  while (ts.isAsExpression(current.parent) || ts.isSatisfiesExpression(current.parent) || ts.isParenthesizedExpression(current.parent)) current = current.parent;
  return current;
}

const propertyName = (node: ts.Node): string | undefined =>
  ts.isPropertyAssignment(node) && (ts.isIdentifier(node.name) || ts.isStringLiteral(node.name)) ? node.name.text : undefined;

/** Where a string literal stands as an ApplicationFailure type, or undefined. */
function failureTypePosition(literal: ts.StringLiteralLike): 'call' | 'list' | 'property' | undefined {
  const node = unwrapped(literal);
  const parent = node.parent;
  // ApplicationFailure.nonRetryable(message, 'Type') / .retryable / new ApplicationFailure(message, 'Type')
  if ((ts.isCallExpression(parent) || ts.isNewExpression(parent)) && parent.arguments?.[1] === node) {
    const callee = parent.expression;
    if (ts.isNewExpression(parent) && ts.isIdentifier(callee) && callee.text === 'ApplicationFailure') return 'call';
    if (ts.isCallExpression(parent) && ts.isPropertyAccessExpression(callee) && callee.expression.getText() === 'ApplicationFailure' && FAILURE_FACTORIES.has(callee.name.text)) return 'call';
  }
  // nonRetryableErrorTypes: ['Type', …]
  if (ts.isArrayLiteralExpression(parent) && propertyName(unwrapped(parent).parent) === 'nonRetryableErrorTypes') return 'list';
  // { type: 'Type' } (ApplicationFailure.create's options, or a failure built by hand)
  if (propertyName(parent) === 'type' && (parent as ts.PropertyAssignment).initializer === node) return 'property';
  return undefined;
}

/**
 * Failure types spelled outside the vocabulary: any literal in an ApplicationFailure
 * call's type argument or a `nonRetryableErrorTypes` list, a failure-type-like literal
 * in a `type:` property, and any literal that repeats a type the vocabulary declares.
 */
function strayFailureTypes(fileName: string, text: string, declared: ReadonlySet<string>): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isStringLiteralLike(node)) {
      const position = failureTypePosition(node);
      const flagged =
        position === 'call' || position === 'list' || (position === 'property' && FAILURE_TYPE_LIKE.test(node.text)) || declared.has(node.text);
      if (flagged) {
        const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
        const why = position ? `as a failure type (${position})` : `repeats a type declared in ${FAILURE_VOCABULARY}`;
        found.push(`${fileName}:${line} '${node.text}' ${why}`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** A deep import of a Temporal SDK package's internals (`@temporalio/common/lib/…`): not its public API. */
const SDK_DEEP_IMPORT = /^@temporalio\/[^/]+\/lib(\/|$)/;

/** Deep SDK imports made from files of `folder`. */
function sdkDeepImports(external: Project['external'], folder: Folder): string[] {
  return external.filter((r) => folderOf(r.from) === folder && SDK_DEEP_IMPORT.test(r.specifier)).map((r) => `${r.from}:${r.line} imports '${r.specifier}'`);
}

const lineCount = (text: string): number => (text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0));

const report = (title: string, problems: readonly string[]): string => `${title}:\n  ${problems.join('\n  ')}\n`;

// ── the detectors, proven on planted examples ──

describe('structure detectors find what they look for', () => {
  it('reports a planted import cycle as a.ts → b.ts → c.ts → a.ts, and none in a tree', () => {
    const cyclic = graphOf([
      ['a.ts', 'b.ts'],
      ['b.ts', 'c.ts'],
      ['c.ts', 'a.ts'],
      ['d.ts', 'a.ts'],
      ['e.ts', 'e.ts'],
    ]);
    expect(findCycles(cyclic).map(formatCycle)).toEqual(['a.ts → b.ts → c.ts → a.ts', 'e.ts → e.ts']);
    expect(findCycles(graphOf([['a.ts', 'b.ts'], ['a.ts', 'c.ts'], ['b.ts', 'c.ts']]))).toEqual([]);
  });

  it('reads static, type-only, re-exported and dynamic imports, and resolves x.ts and x/index.ts', () => {
    const files: Record<string, string> = {
      'workflows/slot.ts': [
        "import {",
        "  type A,",
        "  type B,",
        "} from '../activities/login';",
        "import type * as activities from '../activities';",
        "import { hostTaskQueue } from '../common/slot.js';",
        "export { x } from './refresh';",
        "export type { Y } from './verify';",
        "type Lazy = typeof import('./lazy');",
        "const later = () => import('./later');",
        "import { readFileSync } from 'node:fs';",
        "import './missing';",
      ].join('\n'),
      'workflows/refresh.ts': "import { slotWorkflow } from './slot';\n",
      'workflows/verify.ts': '',
      'workflows/lazy.ts': '',
      'workflows/later.ts': '',
      'activities/login.ts': '',
      'activities/index.ts': '',
      'common/slot.ts': '',
      'test/unit/ignored.ts': "import '../../workflows/slot';\n",
    };
    const project = buildProject(Object.keys(files), (f) => files[f] ?? '');
    const seen = (from: string): string[] => project.edges.filter((e) => e.from === from).map((e) => `${e.to} ${e.kind} :${e.line}`);
    expect(project.files).not.toContain('test/unit/ignored.ts');
    expect(seen('workflows/slot.ts')).toEqual([
      'activities/login.ts type :4',
      'activities/index.ts type :5',
      'common/slot.ts value :6',
      'workflows/refresh.ts value :7',
      'workflows/verify.ts type :8',
      'workflows/lazy.ts type :9',
      'workflows/later.ts value :10',
    ]);
    expect(project.external.map((r) => r.specifier)).toEqual(['node:fs']);
    expect(project.unresolved).toEqual(["workflows/slot.ts:12 './missing'"]);
    expect(findCycles(graphOf(project.edges.map((e) => [e.from, e.to] as const))).map(formatCycle)).toEqual(['workflows/refresh.ts → workflows/slot.ts → workflows/refresh.ts']);
  });

  it('flags imports against the arrows and folder cycles, naming the files', () => {
    const edges: Edge[] = [
      { from: 'providers/claude.ts', to: 'activities/screen.ts', kind: 'value', line: 4 },
      { from: 'activities/login.ts', to: 'providers/index.ts', kind: 'value', line: 8 },
      { from: 'workflows/slot.ts', to: 'activities/index.ts', kind: 'type', line: 21 },
      { from: 'workflows/login.ts', to: 'activities/login.ts', kind: 'value', line: 17 },
      { from: 'common/slot.ts', to: 'providers/provider.ts', kind: 'type', line: 2 },
      { from: 'workers/worker.ts', to: 'activities/index.ts', kind: 'value', line: 10 },
      { from: 'client/slot-client.ts', to: 'workers/config.ts', kind: 'value', line: 12 },
      { from: 'client/index.ts', to: 'cli/slotctl.ts', kind: 'type', line: 3 },
      { from: 'cli/slotctl.ts', to: 'client/slot-client.ts', kind: 'value', line: 23 },
      { from: 'cli/slotctl.ts', to: 'workers/config.ts', kind: 'value', line: 11 },
      { from: 'cli/host-command.ts', to: 'host/slot-host.ts', kind: 'value', line: 5 },
      { from: 'host/config.ts', to: 'workers/temporal-binaries.ts', kind: 'value', line: 9 },
      { from: 'client/slot-client.ts', to: 'host/config.ts', kind: 'type', line: 7 },
    ];
    expect(folderRuleBreaks(edges)).toEqual([
      'providers/claude.ts:4 imports activities/screen.ts; providers/ may import common/',
      'workflows/login.ts:17 imports activities/login.ts as a value; workflows/ may import common/, activities/ (import type only)',
      'common/slot.ts:2 imports providers/provider.ts (type only); common/ may import nothing',
      'client/slot-client.ts:12 imports workers/config.ts; client/ may import providers/, common/',
      'client/index.ts:3 imports cli/slotctl.ts (type only); client/ may import providers/, common/',
      'cli/slotctl.ts:11 imports workers/config.ts; cli/ may import client/, host/, providers/, common/',
      'host/config.ts:9 imports workers/temporal-binaries.ts; host/ may import client/, activities/, providers/, common/',
      'client/slot-client.ts:7 imports host/config.ts (type only); client/ may import providers/, common/',
    ]);
    expect(folderCycles(edges)).toEqual([
      'activities/ → providers/ → activities/: activities/ → providers/ (activities/login.ts:8 imports providers/index.ts); providers/ → activities/ (providers/claude.ts:4 imports activities/screen.ts)',
      'cli/ → client/ → cli/: cli/ → client/ (cli/slotctl.ts:23 imports client/slot-client.ts); client/ → cli/ (client/index.ts:3 imports cli/slotctl.ts)',
    ]);
  });

  it('the arrow table itself points down: no folder may import one that may import it, client/ and host/ sit below cli/, and nothing but scripts/ may import workers/', () => {
    const mayImport = (from: Folder): readonly Folder[] => [...MAY_IMPORT[from].values, ...MAY_IMPORT[from].typesOnly];
    const allowed = graphOf(FOLDERS.flatMap((from) => mayImport(from).map((to) => [from, to] as const)));
    expect(findCycles(allowed).map(formatCycle)).toEqual([]);
    const importersOf = (to: Folder): Folder[] => FOLDERS.filter((from) => mayImport(from).includes(to));
    expect(importersOf('workers')).toEqual(['scripts']);
    expect(importersOf('cli')).toEqual(['scripts']);
    expect(mayImport('cli')).toEqual(expect.arrayContaining(['client', 'host']));
    expect(mayImport('client')).not.toContain('host');
    expect(mayImport('host')).toEqual(expect.arrayContaining(['client', 'activities']));
  });

  it('flags deep imports of SDK internals in client/, and not public SDK imports or other folders', () => {
    const files: Record<string, string> = {
      'client/a.ts': "import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow';\nimport type { TLSConfig } from '@temporalio/client';\n",
      'client/b.ts': "import { WorkflowNotFoundError } from '@temporalio/common';\nconst x = () => import('@temporalio/common/lib/converter/payload-search-attributes');\n",
      'workers/c.ts': "import { x } from '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors';\n",
    };
    const project = buildProject(Object.keys(files), (f) => files[f] ?? '');
    expect(sdkDeepImports(project.external, 'client')).toEqual([
      "client/a.ts:1 imports '@temporalio/common/lib/internal-non-workflow'",
      "client/b.ts:2 imports '@temporalio/common/lib/converter/payload-search-attributes'",
    ]);
  });

  it('flags failure types spelled outside the vocabulary, and not error names or messages', () => {
    const declared = declaredFailureTypes("export const FailureType = { loginTimedOut: 'LoginTimedOut' } as const;\n");
    expect([...declared]).toEqual(['LoginTimedOut']);
    const text = [
      "throw ApplicationFailure.nonRetryable('the code was refused', 'CodeRejected');",
      "throw ApplicationFailure.retryable('webhook down', 'NotifyFailed');",
      "throw ApplicationFailure.create({ message: 'x', type: 'RefreshPermanent', nonRetryable: true });",
      "const retry = { nonRetryableErrorTypes: ['CredentialInvalid', FailureType.loginTimedOut] as const };",
      "switch (type) { case 'LoginTimedOut': break; }",
      "throw ApplicationFailure.nonRetryable('LoginCliFailed is not a type here', FailureType.loginCliFailed);",
      "class CodeRejectedError extends Error { override readonly name = 'CodeRejectedError'; }",
      "const interaction = { type: 'paste-code' };",
    ].join('\n');
    expect(strayFailureTypes('activities/x.ts', text, declared)).toEqual([
      "activities/x.ts:1 'CodeRejected' as a failure type (call)",
      "activities/x.ts:2 'NotifyFailed' as a failure type (call)",
      "activities/x.ts:3 'RefreshPermanent' as a failure type (property)",
      "activities/x.ts:4 'CredentialInvalid' as a failure type (list)",
      `activities/x.ts:5 'LoginTimedOut' repeats a type declared in ${FAILURE_VOCABULARY}`,
    ]);
  });
});

// ── the rules, on the project's own files ──

/** `file:line class X` for each error class a file declares (a class extending Error or another *Error). */
function errorClasses(fileName: string, text: string): string[] {
  const found: string[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    const m = /^\s*(?:export\s+)?(?:abstract\s+)?class\s+(\w+)\s+extends\s+(\w*Error)\b/.exec(line);
    if (m) found.push(`${fileName}:${i + 1} class ${m[1]} extends ${m[2]}`);
  }
  return found;
}

describe('error classes', () => {
  it('the detector finds a planted error class and ignores other classes', () => {
    const text = 'class Slot {}\nexport class BadThing extends Error {}\n  class Inner extends ProviderConfigError {}\n';
    expect(errorClasses('x.ts', text)).toEqual(['x.ts:2 class BadThing extends Error', 'x.ts:3 class Inner extends ProviderConfigError']);
  });
});

describe('project structure (STYLE.md "Arrows point down", DESIGN.md Layout)', () => {
  const project = loadProject();

  it('reads the whole tree: every folder has files and every relative import names a file', () => {
    for (const folder of ['workflows', 'activities', 'providers', 'workers', 'host', 'client', 'cli', 'common'] as const) {
      expect(project.files.filter((f) => folderOf(f) === folder), `no source files found under ${folder}/`).not.toEqual([]);
    }
    expect(project.unresolved, report('Relative imports that name no file', project.unresolved)).toEqual([]);
    const outside = project.files.filter((f) => folderOf(f) === undefined && !/^[^/]+\.config\.ts$/.test(f));
    expect(outside, report(`Source files outside the Layout folders (${FOLDERS.join(', ')}), which no rule covers`, outside)).toEqual([]);
  });

  it('has no import cycle between files (type-only imports count)', () => {
    const cycles = findCycles(graphOf(project.edges.map((e) => [e.from, e.to] as const))).map(formatCycle);
    expect(cycles, report('Import cycles', cycles)).toEqual([]);
  });

  it('has no cycle between top-level folders', () => {
    const cycles = folderCycles(project.edges);
    expect(cycles, report('Folder cycles', cycles)).toEqual([]);
  });

  it('imports only down the arrows (MAY_IMPORT): providers/ → common/, workflows/ → common/ (+ activity types), client/ → providers/ + common/, host/ → client/ + activities/, cli/ → host/ + client/ (never workers/); nothing but scripts/ imports workers/', () => {
    const breaks = folderRuleBreaks(project.edges);
    expect(breaks, report('Imports against the arrows', breaks)).toEqual([]);
  });

  it("the package entry (package.json exports '.') is client/index.ts, and all it reaches lies in client/, providers/ or common/", () => {
    const manifest = JSON.parse(readFileSync(posix.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string }> };
    const entry = manifest.exports['.'];
    expect(entry).toEqual({ types: './client/index.ts', default: './client/index.ts' });
    const reached = new Set(['client/index.ts']);
    for (const file of reached) for (const edge of project.edges) if (edge.from === file) reached.add(edge.to);
    const outside = [...reached].filter((f) => !['client', 'providers', 'common'].includes(folderOf(f) ?? '')).sort();
    expect(outside, report('Files the package entry reaches outside client/, providers/, common/', outside)).toEqual([]);
    expect(reached.has('client/slot-client.ts') && reached.has('client/codec-client.ts')).toBe(true);
  });

  it('client/, the library services import, uses the Temporal SDK through its public exports only (no @temporalio/…/lib/ deep imports)', () => {
    const deep = sdkDeepImports(project.external, 'client');
    expect(deep, report('Deep imports of SDK internals in client/', deep)).toEqual([]);
  });

  it(`keeps every file under workflows/ at ${MAX_WORKFLOW_FILE_LINES} lines or fewer`, () => {
    const long = project.files
      .filter((f) => folderOf(f) === 'workflows')
      .map((f) => ({ f, lines: lineCount(project.text.get(f) ?? '') }))
      .filter(({ lines }) => lines > MAX_WORKFLOW_FILE_LINES)
      .map(({ f, lines }) => `${f}: ${lines} lines`);
    expect(long, report(`Workflow files over ${MAX_WORKFLOW_FILE_LINES} lines`, long)).toEqual([]);
  });

  it('keeps Node builtins and Temporal worker/client/activity packages out of workflows/ and common/', () => {
    const banned = project.external
      .filter((r) => SANDBOXED.includes(folderOf(r.from) as Folder) && (isNodeBuiltin(r.specifier) || SANDBOX_FORBIDDEN_PACKAGES.test(r.specifier)))
      .map((r) => `${r.from}:${r.line} imports '${r.specifier}'${r.kind === 'type' ? ' (type only)' : ''}`);
    expect(banned, report('Sandbox-unsafe imports', banned)).toEqual([]);
  });

  it(`declares every error class in ${FAILURE_VOCABULARY}`, () => {
    const stray = project.files.filter((f) => f !== FAILURE_VOCABULARY).flatMap((f) => errorClasses(f, project.text.get(f) ?? ''));
    expect(stray, report(`Error classes outside ${FAILURE_VOCABULARY}`, stray)).toEqual([]);
    expect(errorClasses(FAILURE_VOCABULARY, project.text.get(FAILURE_VOCABULARY) ?? '').length).toBeGreaterThan(10);
  });

  it(`spells every ApplicationFailure type only in ${FAILURE_VOCABULARY}`, () => {
    const vocabulary = project.text.get(FAILURE_VOCABULARY);
    expect(vocabulary, `${FAILURE_VOCABULARY} is missing`).toBeDefined();
    const declared = declaredFailureTypes(vocabulary ?? '');
    expect(declared.size, `${FAILURE_VOCABULARY} declares no failure types`).toBeGreaterThan(0);
    const stray = project.files.filter((f) => f !== FAILURE_VOCABULARY).flatMap((f) => strayFailureTypes(f, project.text.get(f) ?? '', declared));
    expect(stray, report(`Failure types spelled outside ${FAILURE_VOCABULARY} (use FailureType.…)`, stray)).toEqual([]);
  });
});
