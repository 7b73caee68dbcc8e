/**
 * The deployer's kubernetes target against the Kubernetes API double: the exact server-side-apply
 * requests for a rendered Deployment + Service, the rollout wait on the Deployment's conditions,
 * a failed rollout, and stop = the Deployment applied again with 0 replicas.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIELD_MANAGER, KubernetesTarget } from '../src/deployer/kubernetes-target.js';
import { renderTemplate } from '../src/deployer/render.js';
import { KubeApiDouble } from './helpers/kube-api.js';
import { eventually } from './helpers/wait.js';

const TEMPLATE = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ project }}
  labels: { app: "{{ project }}", env: "{{ environment }}" }
spec:
  replicas: {{ values.replicas }}
  selector: { matchLabels: { app: "{{ project }}" } }
  template:
    metadata: { labels: { app: "{{ project }}" } }
    spec:
      containers:
        - name: web
          image: {{ image_ref }}
          env:
            - { name: GREETING, value: "{{ values.greeting }}" }
          ports: [{ containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata:
  name: {{ project }}
spec:
  selector: { app: "{{ project }}" }
  ports: [{ port: 80, targetPort: 8080 }]
`;

describe('deployer: kubernetes target', () => {
  let kube: KubeApiDouble;
  let target: KubernetesTarget;

  beforeAll(async () => {
    kube = await KubeApiDouble.start();
    target = new KubernetesTarget(kube.kubeConfig(), 5_000, 20);
  });
  afterAll(async () => {
    await kube?.close();
  });

  const render = (greeting: string) =>
    renderTemplate(
      { path: 'apps/shop/app.yaml', text: TEMPLATE },
      {
        image_ref: 'registry.test/shop:abc123',
        artifact: null,
        environment: 'prod',
        project: 'shop',
        values: { replicas: 2, greeting },
      },
    ).map((d) => d.object);

  const applies = () => kube.requests.filter((r) => r.method === 'PATCH');

  it('server-side applies Deployment and Service into the namespace, then waits for the rollout conditions', async () => {
    const objects = render('hello: {world} &x *x !!str\n---');
    const outcome = target.apply('shop-prod', objects);
    // Rollout in progress: no Available condition yet.
    await kube.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/deployments/shop'));
    kube.setDeploymentStatus('shop-prod', 'shop', {
      observedGeneration: 1,
      replicas: 2,
      updatedReplicas: 1,
      readyReplicas: 1,
      conditions: [{ type: 'Progressing', status: 'True', reason: 'ReplicaSetUpdated' }],
    });
    const polls = kube.requests.length;
    await eventually(async () => kube.requests.length > polls + 2);
    kube.setDeploymentStatus('shop-prod', 'shop', {
      observedGeneration: 1,
      replicas: 2,
      updatedReplicas: 2,
      readyReplicas: 2,
      availableReplicas: 2,
      conditions: [
        { type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' },
        { type: 'Progressing', status: 'True', reason: 'NewReplicaSetAvailable' },
      ],
    });
    expect(await outcome).toEqual({
      ok: true,
      applied: [
        { kind: 'Deployment', name: 'shop' },
        { kind: 'Service', name: 'shop' },
      ],
    });

    const [deployment, service] = applies();
    expect(deployment).toMatchObject({
      method: 'PATCH',
      path: '/apis/apps/v1/namespaces/shop-prod/deployments/shop',
      query: { fieldManager: FIELD_MANAGER, force: 'true' },
      contentType: 'application/apply-patch+yaml',
    });
    expect(deployment!.body).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'shop', namespace: 'shop-prod', labels: { app: 'shop', env: 'prod' } },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'shop' } },
        template: {
          metadata: { labels: { app: 'shop' } },
          spec: {
            containers: [
              {
                name: 'web',
                image: 'registry.test/shop:abc123',
                // The hostile value is one string, nothing more.
                env: [{ name: 'GREETING', value: 'hello: {world} &x *x !!str\n---' }],
                ports: [{ containerPort: 8080 }],
              },
            ],
          },
        },
      },
    });
    expect(service).toMatchObject({
      method: 'PATCH',
      path: '/api/v1/namespaces/shop-prod/services/shop',
      query: { fieldManager: FIELD_MANAGER, force: 'true' },
      contentType: 'application/apply-patch+yaml',
      body: {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'shop', namespace: 'shop-prod' },
        spec: { selector: { app: 'shop' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    });
    expect(applies()).toHaveLength(2);
  });

  it('a rollout that exceeds its progress deadline fails as a health failure', async () => {
    kube.requests.length = 0;
    const outcome = target.apply('shop-prod', render('v2'));
    await kube.waitForRequest((r) => r.method === 'GET' && r.path.endsWith('/deployments/shop'));
    kube.setDeploymentStatus('shop-prod', 'shop', {
      observedGeneration: 2,
      replicas: 2,
      updatedReplicas: 1,
      readyReplicas: 1,
      conditions: [
        { type: 'Available', status: 'True' },
        {
          type: 'Progressing',
          status: 'False',
          reason: 'ProgressDeadlineExceeded',
          message: 'ReplicaSet "shop-2" has timed out progressing.',
        },
      ],
    });
    expect(await outcome).toEqual({
      ok: false,
      healthFailure: true,
      message: 'rollout of Deployment shop failed: ReplicaSet "shop-2" has timed out progressing.',
    });
  });

  it('a rollout whose status never catches up times out; objects outside the namespace and unknown kinds are refused', async () => {
    const short = new KubernetesTarget(kube.kubeConfig(), 300, 20);
    // Status of generation 2 while generation 3 is applied: not caught up.
    const outcome = await short.apply('shop-prod', render('v3'));
    expect(outcome).toMatchObject({ ok: false, healthFailure: true });
    expect((outcome as { message: string }).message).toMatch(
      /^health check failed after 0 s \(Deployment shop: /,
    );

    const elsewhere = render('x').map((o) => ({
      ...o,
      metadata: { ...(o.metadata as object), namespace: 'kube-system' },
    }));
    expect(await target.apply('shop-prod', elsewhere)).toMatchObject({ ok: false, healthFailure: false });
    expect(
      await target.apply('shop-prod', [{ kind: 'ClusterRoleBinding', metadata: { name: 'x' } }]),
    ).toMatchObject({
      ok: false,
      message: expect.stringContaining('kind ClusterRoleBinding is not supported'),
    });
  });

  it('stop: the Deployment applied again with replicas 0 by the same field manager', async () => {
    kube.requests.length = 0;
    const manifests = (await import('yaml')).stringify(render('v2')[0]);
    await target.scaleToZero({ namespace: 'shop-prod', manifests });
    const [scale] = applies();
    expect(applies()).toHaveLength(1);
    expect(scale).toMatchObject({
      path: '/apis/apps/v1/namespaces/shop-prod/deployments/shop',
      query: { fieldManager: FIELD_MANAGER, force: 'true' },
      contentType: 'application/apply-patch+yaml',
      body: { kind: 'Deployment', metadata: { name: 'shop', namespace: 'shop-prod' }, spec: { replicas: 0 } },
    });
    expect(kube.applied.get('deployments/shop-prod/shop').spec.replicas).toBe(0);
  });
});
