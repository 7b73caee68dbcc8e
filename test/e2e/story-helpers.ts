/**
 * What the end-to-end stories share: a JSON API caller with fixed credentials, a commit-and-push
 * with stock git, and story 1's tiny app (its HTTP server, which sends its own OTLP/HTTP JSON
 * metrics, its deploy manifests and the pipeline that bundles and publishes it).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gitOk } from '../helpers/git.js';

export type Api = (
  method: string,
  url: string,
  body?: unknown,
  // biome-ignore lint/suspicious/noExplicitAny: the stories read replies loosely
) => Promise<{ status: number; body: any }>;

/** Calls the platform's API with one Authorization header value (Basic or Bearer). */
export function apiClient(base: string, authorization: string): Api {
  return async (method, url, body) => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: { authorization, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: the text
    }
    return { status: res.status, body: parsed };
  };
}

/** Writes the files, commits them and pushes the commit to main; answers its sha. */
export async function commitFiles(
  work: string,
  files: Record<string, string>,
  message: string,
): Promise<string> {
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(work, name)), { recursive: true });
    writeFileSync(path.join(work, name), content);
  }
  await gitOk(['add', '-A'], { cwd: work });
  await gitOk(['commit', '-q', '-m', message], { cwd: work });
  await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
  return (await gitOk(['rev-parse', 'HEAD'], { cwd: work })).trim();
}

/**
 * Bundles app/ (with the telemetry token of the OTLP_TOKEN pipeline secret, masked in the log) and
 * publishes it to staging. It pauses first, so the browser sees the log while it streams.
 */
export const STORY_PIPELINE = `pipeline:
  steps:
    - name: bundle
      environment:
        OTLP_TOKEN: "\${{ secrets.OTLP_TOKEN }}"
      commands:
        - echo packing the app
        - sleep 5
        - printf '%s' "$OTLP_TOKEN" > app/otlp-token
        - tar czf app.tgz -C app .
        - echo bundled
      publish: { artifact: app.tgz, environment: staging }
  on: { push: { branches: [main] } }
`;

/**
 * The app: answers its version, /health for the deployer, and every second posts a gauge
 * `checkout_failures` = 7 of service `webapp` to the platform's /v1/metrics as OTLP/HTTP JSON, with
 * the token from the artifact and the endpoint and project from its deploy values.
 */
const SERVER_JS = `const http = require('node:http');
const fs = require('node:fs');
const version = process.env.VERSION;
const token = fs.readFileSync('otlp-token', 'utf8').trim();
const attr = (key, v) => ({ key, value: { stringValue: v } });
function send() {
  const body = JSON.stringify({
    resourceMetrics: [{
      resource: { attributes: [attr('service.name', 'webapp'), attr('service.version', version), attr('platform.project_id', process.env.PROJECT_ID)] },
      scopeMetrics: [{ scope: { name: 'webapp' }, metrics: [{ name: 'checkout_failures', gauge: { dataPoints: [{ timeUnixNano: String(BigInt(Date.now()) * 1000000n), asDouble: 7 }] } }] }],
    }],
  });
  fetch(process.env.OTLP_ENDPOINT + '/v1/metrics', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token }, body })
    .then((r) => console.log('otlp export ' + r.status), (e) => console.log('otlp export failed ' + e.message));
}
setInterval(send, 1000).unref();
send();
http.createServer((req, res) => {
  if (req.url === '/health') { res.writeHead(200); res.end('ok'); return; }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(version);
}).listen(Number(process.env.PORT), '127.0.0.1', () => console.log('listening ' + version));
`;

const MANIFEST = `kind: LocalProcess
name: web
command: node
args: [server.js]
env:
  VERSION: "{{ values.version }}"
  OTLP_ENDPOINT: "{{ values.otlp_endpoint }}"
  PROJECT_ID: "{{ values.project_id }}"
health_path: /health
readiness_timeout_seconds: 30
drain_seconds: 1
`;

/** The app's files at one version. */
export function appFiles(o: { version: string; otlp: string; projectId: string }): Record<string, string> {
  return {
    'app/server.js': SERVER_JS,
    'deploy/app.yaml': MANIFEST,
    'deploy/values.yaml': `version: ${o.version}\notlp_endpoint: ${o.otlp}\nproject_id: ${o.projectId}\n`,
  };
}
