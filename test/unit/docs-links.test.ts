// Every relative link and `#anchor` in README.md and docs/ resolves: the file exists and the
// anchor is a heading of its target, slugged as GitHub slugs them (github-slugger). A broken
// link fails naming the file, the line and the link; the checker is first shown to find one.
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import GithubSlugger from 'github-slugger';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '../..');

/** Links that leave the repository on purpose (`file -> href`): nothing here can check them. */
const OUTSIDE_REPOSITORY = new Set(['README.md -> ../shared/DESIGN.md']);

interface Link {
  readonly line: number;
  readonly href: string;
}

interface MarkdownFacts {
  readonly anchors: ReadonlySet<string>;
  readonly links: readonly Link[];
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
// `](href)` or `](href "title")`: the link text may have started on an earlier line.
const INLINE_LINK = /\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;
const REFERENCE_DEFINITION = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/;

/** Code spans hold no links: `` `a](b)` `` is text. */
function withoutCodeSpans(line: string): string {
  return line.replace(/(`+)[^`]*?\1/g, '');
}

/** The heading's text as GitHub renders it before slugging: no code marks, emphasis or link targets. */
function headingText(raw: string): string {
  return raw
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*]/g, '')
    .replace(/<[^>]+>/g, '');
}

function readMarkdown(text: string): MarkdownFacts {
  const slugger = new GithubSlugger();
  const anchors = new Set<string>();
  const links: Link[] = [];
  let fence: string | undefined;
  text.split('\n').forEach((line, index) => {
    const fenceMark = FENCE.exec(line)?.[1];
    if (fenceMark !== undefined) {
      if (fence === undefined) fence = fenceMark;
      else if (fenceMark[0] === fence[0] && fenceMark.length >= fence.length) fence = undefined;
      return;
    }
    if (fence !== undefined) return;
    const heading = HEADING.exec(line);
    if (heading) anchors.add(slugger.slug(headingText(heading[1] ?? '')));
    for (const match of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) anchors.add(match[1] ?? '');
    const prose = withoutCodeSpans(line);
    for (const match of prose.matchAll(INLINE_LINK)) links.push({ line: index + 1, href: match[1] ?? '' });
    const definition = REFERENCE_DEFINITION.exec(prose);
    if (definition) links.push({ line: index + 1, href: definition[1] ?? '' });
  });
  return { anchors, links };
}

function markdownFilesOf(root: string): string[] {
  const files = existsSync(join(root, 'README.md')) ? ['README.md'] : [];
  const walk = (dir: string): void => {
    if (!existsSync(join(root, dir))) return;
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) files.push(path);
    }
  };
  walk('docs');
  return files.sort();
}

/** Every broken link of README.md and docs/ under `root`, as `file:line: href: why`. */
function brokenLinks(root: string, outsideRepository: ReadonlySet<string> = new Set()): string[] {
  const facts = new Map<string, MarkdownFacts>();
  const factsOf = (absolute: string): MarkdownFacts => {
    let known = facts.get(absolute);
    if (known === undefined) {
      known = readMarkdown(readFileSync(absolute, 'utf8'));
      facts.set(absolute, known);
    }
    return known;
  };
  const problems: string[] = [];
  for (const file of markdownFilesOf(root)) {
    for (const { line, href } of factsOf(join(root, file)).links) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith('//')) continue; // another site
      const say = (why: string): void => {
        problems.push(`${file}:${line}: ${href}: ${why}`);
      };
      const hash = href.indexOf('#');
      const pathPart = decodeURIComponent(hash < 0 ? href : href.slice(0, hash));
      const anchor = hash < 0 ? undefined : decodeURIComponent(href.slice(hash + 1));
      const target = pathPart === '' ? join(root, file) : resolve(root, dirname(file), pathPart);
      if (relative(root, target).startsWith(`..${sep}`) || relative(root, target) === '..') {
        if (!outsideRepository.has(`${file} -> ${href}`)) say('leaves the repository');
        continue;
      }
      if (!existsSync(target)) {
        say(`no such file ${relative(root, target)}`);
        continue;
      }
      if (anchor === undefined) continue;
      if (!target.endsWith('.md')) {
        if (!/^L\d+(?:-L\d+)?$/.test(anchor)) say(`${relative(root, target)} is not markdown: only line anchors (#L12) resolve`);
        continue;
      }
      if (!factsOf(target).anchors.has(anchor)) say(`no heading with anchor #${anchor} in ${relative(root, target)}`);
    }
  }
  return problems;
}

describe('links in README.md and docs/', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'docs-links-'));
  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it('the checker finds a missing file, a missing anchor and a link out of the repository, with file and line', () => {
    mkdirSync(join(scratch, 'docs'));
    writeFileSync(
      join(scratch, 'README.md'),
      [
        '# Title',
        '## Setup: `npm start` (the embedded server)',
        '## Setup: `npm start` (the embedded server)',
        'See [setup](#setup-npm-start-the-embedded-server) and [again](#setup-npm-start-the-embedded-server-1),',
        '[the page](docs/page.md#a-section), [gone](docs/gone.md), [no anchor](docs/page.md#nowhere),',
        '[out](../elsewhere.md), `[not a link](docs/gone.md)`, and [a site](https://example.com/#x).',
        '```',
        '[in a fence](docs/gone.md)',
        '```',
        '[twice](#setup-npm-start-the-embedded-server-2)',
      ].join('\n'),
    );
    writeFileSync(join(scratch, 'docs', 'page.md'), '# Page\n\n## A section\n\nBack to [the top](../README.md#title) and [a typo](../README.md#titel).\n');
    expect(brokenLinks(scratch)).toEqual([
      'README.md:5: docs/gone.md: no such file docs/gone.md',
      'README.md:5: docs/page.md#nowhere: no heading with anchor #nowhere in docs/page.md',
      'README.md:6: ../elsewhere.md: leaves the repository',
      'README.md:10: #setup-npm-start-the-embedded-server-2: no heading with anchor #setup-npm-start-the-embedded-server-2 in README.md',
      'docs/page.md:5: ../README.md#titel: no heading with anchor #titel in README.md',
    ]);
  });

  it('every relative link and anchor resolves', () => {
    const files = markdownFilesOf(ROOT);
    expect(files).toContain('README.md');
    expect(files.length).toBeGreaterThan(1);
    expect(brokenLinks(ROOT, OUTSIDE_REPOSITORY)).toEqual([]);
  });

  it('README.md links every page of docs/', () => {
    const linked = new Set(
      readMarkdown(readFileSync(join(ROOT, 'README.md'), 'utf8')).links.map(({ href }) => href.split('#')[0]),
    );
    const pages = markdownFilesOf(ROOT).filter((file) => file.startsWith('docs/'));
    expect(pages.filter((page) => !linked.has(page))).toEqual([]);
  });
});
