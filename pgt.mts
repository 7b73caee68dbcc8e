import { PGlite } from '@electric-sql/pglite';

let t = Date.now();
const a = new PGlite();
await a.waitReady;
console.log('fresh', Date.now() - t);
const blob = await a.dumpDataDir('none');
await a.close();
t = Date.now();
const b = new PGlite({ loadDataDir: blob });
await b.waitReady;
console.log('from dump', Date.now() - t);
t = Date.now();
const c = new PGlite();
await c.waitReady;
console.log('fresh again', Date.now() - t);
