/**
 * Agent sessions with `executor = kubernetes`, against the Kubernetes API double (the test plays the
 * kubelet): the session is a pod like a pipeline step's — non-root, no service-account token,
 * resource limits, restartPolicy Never — whose whole environment (session token, prompt, the
 * project's agent secrets) comes from a per-run Secret, never as values in the pod spec; its log is
 * parsed as the provider's stream-json; the pod's exit ends the session.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPlatform, eventually, servicesMissing, type TestPlatform } from './helpers/app.js';
import { authUrl, gitOk, tempDir } from './helpers/git.js';
import { KubeApiDouble } from './helpers/kube-api.js';

describe.skipIf(servicesMissing)('agent sessions on the kubernetes runner (API double)', () => {
  let t: TestPlatform;
  let kube: KubeApiDouble;
  const tmp = tempDir('platform-agent-k8s-');

  beforeAll(async () => {
    kube = await KubeApiDouble.start();
    const kubeconfig = path.join(tmp.dir, 'kubeconfig.yaml');
    writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: double\n  cluster:\n    server: ${kube.url}\n    insecure-skip-tls-verify: true`,
        'users:',
        '- name: runner\n  user:\n    token: test',
        'contexts:',
        '- name: double\n  context:\n    cluster: double\n    user: runner',
        'current-context: double',
        '',
      ].join('\n'),
    );
    t = await createTestPlatform({
      listen: true,
      config: {
        PLATFORM_EXECUTOR: 'kubernetes',
        PLATFORM_KUBECONFIG: kubeconfig,
        PLATFORM_K8S_NAMESPACE: 'agents',
        PLATFORM_K8S_STEP_CPU: '1',
        PLATFORM_K8S_STEP_MEMORY: '2Gi',
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    await kube?.close();
    tmp.cleanup();
  });

  it('runs the session as a restricted pod with its environment in a Secret and ends with the pod', async () => {
    const dev = await t.createUser('kai', ['developer']);
    const project = await t.request('POST', '/api/projects', {
      token: dev.token,
      body: { name: 'podagent' },
    });
    const projectId = project.body.id as string;
    const work = path.join(tmp.dir, 'work');
    await gitOk(['clone', authUrl(t.baseUrl, 'kai', dev.token, '/kai/podagent.git'), work]);
    await gitOk(['checkout', '-q', '-B', 'main'], { cwd: work });
    writeFileSync(path.join(work, 'README.md'), 'x\n');
    await gitOk(['add', '-A'], { cwd: work });
    await gitOk(['-c', 'user.name=a', '-c', 'user.email=a@x', 'commit', '-q', '-m', 'init'], { cwd: work });
    await gitOk(['push', '-q', 'origin', 'HEAD:refs/heads/main'], { cwd: work });
    const apiKey = 'sk-ant-k8s-test-value-93f1';
    await t.request('POST', `/api/projects/${projectId}/secrets`, {
      token: t.adminToken,
      body: { name: 'ANTHROPIC_API_KEY', value: apiKey, scope: 'agent' },
    });

    const created = await t.request('POST', `/api/projects/${projectId}/sessions`, {
      token: dev.token,
      body: { prompt: 'fix the build, please' },
      noAuditCheck: true,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const sid = created.body.id as string;
    const pod = await kube.nextPod(30_000);
    expect(pod.namespace).toBe('agents');
    expect(pod.labels).toMatchObject({ 'platform.io/agent-session': sid, 'platform.io/project': projectId });
    const spec = pod.spec;
    expect(spec.restartPolicy).toBe('Never');
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
    for (const c of [...spec.initContainers, ...spec.containers]) {
      expect(c.securityContext).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
      });
      expect(c.resources.limits).toEqual({ cpu: '1', memory: '2Gi' });
      for (const e of c.env as { name: string; value?: string }[])
        if (e.value !== undefined)
          expect(['PLATFORM_CLONE_URL', 'PLATFORM_COMMIT_SHA', 'HOME']).toContain(e.name);
    }
    const step = spec.containers.find((c: { name: string }) => c.name === 'step');
    expect(step.image).toBe('node:20-bookworm');
    expect(step.command.join(' ')).toContain("'claude' '-p' '--output-format' 'stream-json'");

    // Secrets only by reference: nothing secret in any pod body sent.
    pod.startStep();
    const env = pod.env('step');
    const agentToken = env.PLATFORM_API_TOKEN!;
    expect(agentToken).toMatch(/^plat_/);
    expect(env).toMatchObject({
      ANTHROPIC_API_KEY: apiKey,
      PROMPT: 'fix the build, please',
      PLATFORM_API_URL: `${t.baseUrl}/api`,
      PROJECT_CLONE_URL: `${t.baseUrl}/kai/podagent.git`,
      BRANCH: `agent/${sid.slice(0, 8)}`,
    });
    expect(JSON.parse(env.AGENT_MCP_JSON!)).toEqual({
      mcpServers: {
        platform: {
          type: 'http',
          url: `${t.baseUrl}/mcp`,
          headers: { Authorization: `Bearer ${agentToken}` },
        },
      },
    });
    for (const r of kube.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/pods'))) {
      expect(r.rawBody).not.toContain(apiKey);
      expect(r.rawBody).not.toContain(agentToken);
    }
    // The pod's clone token is the session's token: the init container clones with it.
    expect(pod.env('clone').PLATFORM_CLONE_TOKEN).toBe(agentToken);

    pod.log(
      [
        JSON.stringify({
          type: 'system',
          subtype: 'init',
          session_id: 's',
          model: 'm',
          tools: ['Bash'],
          mcp_servers: [],
        }),
        JSON.stringify({ type: 'assistant', message: { content: [{ type: 'text', text: 'on it' }] } }),
        JSON.stringify({
          type: 'result',
          subtype: 'success',
          num_turns: 1,
          total_cost_usd: 0.02,
          usage: { input_tokens: 5, output_tokens: 7 },
        }),
        '',
      ].join('\n'),
    );
    pod.exit(0);
    const done = await eventually(
      async () => {
        const s = await t.request('GET', `/api/projects/${projectId}/sessions/${sid}`, { token: dev.token });
        return s.body.status !== 'running' && s.body.status !== 'pending' ? s.body : undefined;
      },
      60_000,
      'the session to end',
    );
    expect(done.status).toBe('completed');
    expect(done.runner).toBe('kubernetes');
    expect(done.messages.map((m: { kind: string }) => m.kind)).toEqual(
      expect.arrayContaining(['init', 'text', 'usage', 'completed']),
    );
    expect(done.totals.cost_usd).toBeCloseTo(0.02);
    await t.platform.settle();
    expect((await t.request('GET', '/api/auth/me', { token: agentToken })).status).toBe(401);
    await eventually(() => kube.secrets.every((s) => s.deleted), 30_000, 'the run Secret deleted');
  }, 120_000);
});
