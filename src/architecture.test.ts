import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * docs/architecture.md's ownership table is kept true by reading the code: every table of the
 * migrations has exactly one owner, a module writes only the tables it owns (others go through the
 * owner's exported functions, which live in the owner's folder), and each module's events.ts declares
 * exactly the events the table gives it.
 */
const root = path.resolve(import.meta.dirname, '..');
const doc = readFileSync(path.join(root, 'docs/architecture.md'), 'utf8');

interface Ownership {
  tables: string[];
  events: string[];
}

function ownershipTable(): Map<string, Ownership> {
  const start = doc.indexOf('<!-- ownership:start -->');
  const end = doc.indexOf('<!-- ownership:end -->');
  if (start < 0 || end < 0) throw new Error('docs/architecture.md lost its ownership table markers');
  const rows = doc
    .slice(start, end)
    .split('\n')
    .filter((l) => l.startsWith('|') && !/^\|\s*-/.test(l))
    .slice(1);
  const cells = (text: string) => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
  const table = new Map<string, Ownership>();
  for (const row of rows) {
    const [, module, tables, events] = row.split('|').map((c) => c.trim());
    if (!module) continue;
    table.set(module.replaceAll('`', ''), { tables: cells(tables ?? ''), events: cells(events ?? '') });
  }
  return table;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...sourceFiles(full));
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

function migrationTables(): string[] {
  const dir = path.join(root, 'src/store/migrations');
  const tables = new Set<string>();
  for (const f of readdirSync(dir)) {
    const text = readFileSync(path.join(dir, f), 'utf8');
    for (const m of text.matchAll(/create table (?:if not exists )?([a-z_]+)/gi)) tables.add(m[1] as string);
    for (const m of text.matchAll(/drop table (?:if exists )?([a-z_]+)/gi)) tables.delete(m[1] as string);
  }
  tables.delete('schema_migrations');
  return [...tables].sort();
}

/** Tables a file writes: Kysely builders and raw SQL. */
function writtenTables(text: string): Set<string> {
  const out = new Set<string>();
  const patterns = [
    /\b(?:insertInto|updateTable|deleteFrom|mergeInto)\(\s*'([a-z_]+)/g,
    /\b(?:insert\s+into|delete\s+from)\s+([a-z_]+)/gi,
    /\bupdate\s+([a-z_]+)(?:\s+[a-z]+)?\s+set\b/gi,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.add((m[1] as string).toLowerCase());
  return out;
}

const modules = readdirSync(path.join(root, 'src')).filter((n) =>
  statSync(path.join(root, 'src', n)).isDirectory(),
);

describe('docs/architecture.md', () => {
  const table = ownershipTable();

  it('lists every module folder under src/, and nothing else', () => {
    expect([...table.keys()].sort()).toEqual([...modules].sort());
  });

  it('gives every table of the migrations exactly one owner', () => {
    const owners = new Map<string, string[]>();
    for (const [module, o] of table)
      for (const t of o.tables) owners.set(t, [...(owners.get(t) ?? []), module]);
    const problems: string[] = [];
    for (const t of migrationTables()) {
      const who = owners.get(t) ?? [];
      if (who.length !== 1) problems.push(`${t}: owned by ${who.length ? who.join(', ') : 'nobody'}`);
    }
    for (const t of owners.keys())
      if (!migrationTables().includes(t)) problems.push(`${t}: listed but no migration creates it`);
    expect(problems).toEqual([]);
  });

  it('a module writes only the tables it owns', () => {
    const owner = new Map<string, string>();
    for (const [module, o] of table) for (const t of o.tables) owner.set(t, module);
    const problems: string[] = [];
    for (const module of modules) {
      if (module === 'store') continue; // migrations and the driver layer
      for (const file of sourceFiles(path.join(root, 'src', module))) {
        for (const t of writtenTables(readFileSync(file, 'utf8'))) {
          const own = owner.get(t);
          if (own === undefined) continue; // not a table (a word after "update" in a comment)
          if (own !== module) problems.push(`${path.relative(root, file)} writes ${t} (owned by ${own})`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("deployments' status columns are written only by src/deployer/transitions.ts", () => {
    const own = path.join(root, 'src/deployer/transitions.ts');
    const problems: string[] = [];
    for (const module of modules) {
      if (module === 'store') continue;
      for (const file of sourceFiles(path.join(root, 'src', module))) {
        if (file === own) continue;
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(
          /insertInto\(\s*'deployments'|updateTable\(\s*'deployments'|\bupdate\s+deployments\b/gi,
        )) {
          // The statement: from the builder (or the SQL) to its execute.
          const rest = text.slice(m.index);
          const end = rest.search(/\.execute/);
          const statement = end < 0 ? rest : rest.slice(0, end);
          const kyselyKey = /\b(?:desired_status|current_status)\s*:/.test(statement);
          const sqlSet =
            /\bset\b([\s\S]*?)(?:\bwhere\b|\bfrom\b|\breturning\b|`)/i.exec(statement)?.[1] ?? '';
          if (kyselyKey || /\b(?:desired_status|current_status)\s*=/.test(sqlSet))
            problems.push(`${path.relative(root, file)} sets a deployment status outside transitions.ts`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("each module's events.ts declares exactly the events listed for it", () => {
    const problems: string[] = [];
    for (const module of modules) {
      let text = '';
      try {
        text = readFileSync(path.join(root, 'src', module, 'events.ts'), 'utf8');
      } catch {
        // no events.ts
      }
      const block = text.match(/^\s*interface DomainEvents \{([\s\S]*?)\n\s*\}/m)?.[1] ?? '';
      const declared = [...block.matchAll(/'([a-z_.]+)'\s*:/g)].map((m) => m[1] as string).sort();
      const listed = [...(table.get(module)?.events ?? [])].sort();
      if (JSON.stringify(declared) !== JSON.stringify(listed))
        problems.push(`${module}: declares [${declared.join(', ')}], the table says [${listed.join(', ')}]`);
    }
    expect(problems).toEqual([]);
  });
});
