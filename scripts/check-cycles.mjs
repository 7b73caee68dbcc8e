// Fails on any import cycle in src/, type-only imports included: between files, and between
// modules (the folders under src/: a module may not reach back to one that imports it, even
// through different files). Run by `npm run lint`.
import { cruise } from 'dependency-cruiser';

const result = await cruise(['src'], {
  tsPreCompilationDeps: true,
  tsConfig: { fileName: 'tsconfig.json' },
  doNotFollow: { path: 'node_modules' },
  exclude: { path: '\\.test\\.ts$' },
});
const files = result.output.modules.filter((m) => m.source.startsWith('src/'));

const moduleOf = (file) => {
  const parts = file.split('/');
  return parts.length > 2 ? parts[1] : '(root)';
};

/** Every elementary cycle reachable in a graph, each reported once (as found by depth-first search). */
function cycles(graph) {
  const found = [];
  const state = new Map(); // node -> 'open' | 'done'
  const stack = [];
  const visit = (node) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return found;
}

const fileGraph = new Map();
const moduleGraph = new Map();
const why = new Map(); // "a -> b" module edge -> an example file edge
for (const m of files) {
  const deps = m.dependencies.filter((d) => d.resolved.startsWith('src/')).map((d) => d.resolved);
  fileGraph.set(m.source, new Set(deps));
  const from = moduleOf(m.source);
  if (from === '(root)') continue; // app.ts, main.ts and server.ts compose modules; nothing imports them
  for (const dep of deps) {
    const to = moduleOf(dep);
    if (to === from || to === '(root)') continue;
    if (!moduleGraph.has(from)) moduleGraph.set(from, new Set());
    moduleGraph.get(from).add(to);
    if (!why.has(`${from} -> ${to}`)) why.set(`${from} -> ${to}`, `${m.source} imports ${dep}`);
  }
}
const fileCycles = cycles(fileGraph);
const moduleCycles = cycles(moduleGraph);
for (const c of fileCycles) console.error(`import cycle between files: ${c.join(' -> ')}`);
for (const c of moduleCycles) {
  console.error(`import cycle between modules: ${c.join(' -> ')}`);
  for (let i = 0; i + 1 < c.length; i++) console.error(`  ${why.get(`${c[i]} -> ${c[i + 1]}`)}`);
}
if (fileCycles.length + moduleCycles.length > 0) {
  console.error('Move the shared part to the module that owns it, or to core/; see docs/architecture.md.');
  process.exit(1);
}
console.log(`no import cycles (${files.length} files, ${moduleGraph.size} modules)`);
