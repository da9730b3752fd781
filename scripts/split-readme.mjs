// One-off: splits a one-file README.md into README.md (front page) + docs/ pages, moving each
// section verbatim (headings one level up, links re-pointed), as issue 24 item 6 did. Kept so a
// README edited on another branch can be merged whole and split again: `node scripts/split-readme.mjs`.
import fs from 'node:fs';
import path from 'node:path';
import GithubSlugger from 'github-slugger';
const root = process.cwd();
const src = fs.readFileSync(path.join(root, 'README.md'), 'utf8').split('\n');
// top-level sections (## outside fences): [title, startIdx]
const secs = []; let fence = false;
src.forEach((l, i) => { if (/^(```|~~~)/.test(l)) fence = !fence; if (!fence && /^## /.test(l)) secs.push({ title: l.slice(3), start: i }); });
secs.forEach((s, k) => { s.end = k + 1 < secs.length ? secs[k + 1].start : src.length; });
const by = (t) => { const s = secs.find((x) => x.title === t); if (!s) throw new Error(t); return src.slice(s.start, s.end); };
const shift = (lines, d) => { let f = false; return lines.map((l) => { if (/^(```|~~~)/.test(l)) f = !f; if (!f && /^#{2,6} /.test(l)) return l.slice(d); return l; }); };
const trimEnd = (lines) => { const a = [...lines]; while (a.length && a[a.length - 1].trim() === '') a.pop(); return a; };
const page = (parts) => trimEnd(parts.flatMap((p) => [...trimEnd(p), ''])).concat(['']);
const pages = {
  'docs/operating.md': page([shift(by('Operating slots'), 1), by('Phases'), by('Keeping slots alive'), by('Live probes')]),
  'docs/agents.md': page([shift(by('Using a slot from an agent'), 1)]),
  'docs/configuration.md': page([shift(by('Configuration'), 1)]),
  'docs/observability.md': page([shift(by('Metrics and traces'), 1)]),
  'docs/security.md': page([shift(by('Secrets'), 1)]),
  'docs/scaling.md': page([shift(by('Scaling out'), 1)]),
  'docs/fleets.md': page([shift(by('Running a fleet'), 1)]),
  'docs/upgrading.md': page([shift(by('Upgrading from v1 slot workflows'), 1)]),
  'docs/development.md': page([shift(by('Development'), 1), by('How it works')]),
};
const keepTitles = ['Five minutes: one slot, from nothing to refreshing', 'What it does', 'The two commands, in detail'];
const head = src.slice(0, secs[0].start);
const toc = `## Documentation

| page | what it holds |
|---|---|
| [Operating slots](docs/operating.md) | slotctl, the \`temporal\` CLI, the Web UI and your own service; the providers' logins (\`claude-setup-token\`, \`oidc-device\`); phases; how slots are kept alive; live probes |
| [Using a slot from an agent](docs/agents.md) | the agent directory, the agent token service and the agent provision plan |
| [Configuration](docs/configuration.md) | every environment variable; outbound proxies and extra CAs; the login CLI versions |
| [Metrics and traces](docs/observability.md) | Prometheus metrics, what a scrape costs, alert rules, OpenTelemetry traces |
| [Secrets](docs/security.md) | secrets, the host as the trust anchor, retired slots, faults and what holds, transport and teams |
| [Scaling out](docs/scaling.md) | the compose topology, more hosts and processes, worker roles, the cluster without Docker |
| [Running a fleet](docs/fleets.md) | pacing and incidents, notices, bulk actions, pools, credential backup, moving a slot |
| [Upgrading from v1 slot workflows](docs/upgrading.md) | migrating v1 slots, retiring a workflow patch |
| [Development](docs/development.md) | tests, recorded histories, the real CLIs end to end, raising a pinned CLI version; how it works |
`.split('\n');
const readme = page([head, ...keepTitles.map(by), toc]);
const out = { 'README.md': readme, ...pages };
// slugs per file
const slugs = {};
for (const [f, lines] of Object.entries(out)) {
  const s = new GithubSlugger(); slugs[f] = new Set(); let fe = false;
  for (const l of lines) { if (/^(```|~~~)/.test(l)) fe = !fe; const m = !fe && /^#{1,6} (.*)$/.exec(l); if (m) slugs[f].add(s.slug(m[1].replace(/[`*]/g, ''))); }
}
for (const [f, lines] of Object.entries(out)) {
  const dir = path.dirname(f);
  out[f] = lines.map((l) => l.replace(/\]\(([^)\s]+)\)/g, (all, href) => {
    if (/^[a-z]+:/i.test(href)) return all;
    if (href.startsWith('#')) {
      const a = href.slice(1);
      if (slugs[f].has(a)) return all;
      const owners = Object.keys(slugs).filter((g) => slugs[g].has(a));
      if (owners.length !== 1) throw new Error(`${f}: ${href} owners ${owners}`);
      return `](${path.relative(dir, owners[0])}#${a})`;
    }
    if (dir === '.') return all;
    return `](${path.relative(dir, href)})`;
  }));
}
fs.mkdirSync(path.join(root, 'docs'), { recursive: true });
for (const [f, lines] of Object.entries(out)) fs.writeFileSync(path.join(root, f), lines.join('\n'));
// Nothing lost: every original line is in some page, up to heading marks and link targets.
const norm = (l) => l.replace(/^#{1,6} /, '').replace(/\]\([^)\s]+\)/g, ']()');
const count = (a) => a.map(norm).filter((l) => l.trim()).reduce((m, l) => m.set(l, (m.get(l) ?? 0) + 1), new Map());
const before = count(src), after = count(Object.values(out).flat());
for (const [l, n] of before) if ((after.get(l) ?? 0) < n) { console.error('lost:', l); process.exitCode = 1; }
