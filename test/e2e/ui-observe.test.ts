import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killAllChildren, removeTempDirs } from '../helpers/process.js';
import {
  ADMIN_PASSWORD,
  checkPage,
  heading,
  launchBrowser,
  openTab,
  screenshot,
  signIn,
  startPlatform,
  type Tab,
} from './browser.js';
import { apiClient } from './story-helpers.js';

/**
 * The observability pages in headless Chromium against a real `platform serve`: logs, a trace and
 * metrics sent by the official OpenTelemetry JS SDK exporters (OTLP/protobuf) are searched (a bad
 * query shown at its position, a live tail over server-sent events), the trace opened as a waterfall,
 * a metric charted with uplot, an alert rule created in the editor and seen firing, then silenced
 * and disabled; every page checked with axe-core and for CSP violations, each with a screenshot.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('web UI in Chromium: observability pages', () => {
  let base = '';
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  let admin: Tab;
  let projectId = '';
  let traceId = '';
  const auth = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;
  const service = 'checkout';
  const root = '/projects/admin/shop/observe';

  const call = (method: string, url: string, body?: unknown) => apiClient(base, auth)(method, url, body);

  const exporter = (signal: string) => ({
    url: `${base}/v1/${signal}`,
    headers: { authorization: auth },
  });
  const resource = () =>
    resourceFromAttributes({ 'service.name': service, 'platform.project_id': projectId });

  /** A log line through the SDK's log exporter (acknowledged = durable). */
  async function emitLog(message: string, severity = SeverityNumber.INFO, ctx = context.active()) {
    const provider = new LoggerProvider({
      resource: resource(),
      processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter(exporter('logs')) })],
    });
    provider.getLogger('e2e').emit({
      severityNumber: severity,
      severityText: SeverityNumber[severity],
      body: message,
      attributes: { 'order.id': 'o-42' },
      context: ctx,
    });
    await provider.forceFlush();
    await provider.shutdown();
  }

  const check = checkPage;

  beforeAll(async () => {
    const started = await startPlatform({ PLATFORM_ALERT_EVALUATION_INTERVAL_SECONDS: '1' });
    base = started.base;
    const project = await call('POST', '/api/projects', { name: 'shop' });
    expect(project.status, JSON.stringify(project.body)).toBe(201);
    projectId = project.body.id;

    // A trace of two spans (the child failed) with a warning logged inside it.
    const tracer = new BasicTracerProvider({
      resource: resource(),
      spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter(exporter('traces')))],
    });
    const t = tracer.getTracer('e2e');
    const span = t.startSpan('GET /cart');
    const rootCtx = trace.setSpan(context.active(), span);
    const child = t.startSpan('db.query', { attributes: { 'db.system': 'postgresql' } }, rootCtx);
    await sleep(20);
    await emitLog('payment declined for order o-42', SeverityNumber.WARN, trace.setSpan(rootCtx, child));
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock' });
    child.end();
    await sleep(10);
    span.end();
    await tracer.forceFlush();
    await tracer.shutdown();
    traceId = span.spanContext().traceId;
    await emitLog('cart viewed', SeverityNumber.INFO);

    // A counter with two routes, exported twice.
    const reader = new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter(exporter('metrics')),
      exportIntervalMillis: 3_600_000,
    });
    const meters = new MeterProvider({ resource: resource(), readers: [reader] });
    const requests = meters.getMeter('e2e').createCounter('http_requests_total');
    requests.add(3, { route: '/cart' });
    requests.add(5, { route: '/pay' });
    await meters.forceFlush();
    await sleep(1100);
    requests.add(4, { route: '/cart' });
    requests.add(1, { route: '/pay' });
    await meters.forceFlush();
    await meters.shutdown();

    const logs = await call('GET', `/api/observe/logs?project_id=${projectId}`);
    expect(logs.body.items).toHaveLength(2);

    browser = await launchBrowser();
    admin = await openTab(browser, base);
    const { page } = admin;
    await page.goto('/login');
    await signIn(page, 'admin', ADMIN_PASSWORD);
  });

  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail' && admin)
      await screenshot(admin.page, `failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`).catch(
        () => undefined,
      );
  });

  afterAll(async () => {
    await browser?.close();
    await killAllChildren();
    removeTempDirs();
  });

  it('searches the logs an OpenTelemetry exporter sent: a refused query at its position, filters, an expanded row', async () => {
    const { page } = admin;
    await page.goto(`${root}/logs`);
    await heading(page, 'Logs');
    const rows = page.getByRole('table', { name: 'Log entries' }).getByRole('row');
    await rows.nth(2).waitFor(); // header + both entries
    await check(admin, 'observe-logs');

    await page.getByLabel('Query').fill('{level>="warn", service="checkout"');
    await page.getByRole('button', { name: 'Search' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: 'Invalid query' });
    await refusal.waitFor();
    expect(await refusal.textContent()).toMatch(/line 1, column \d+/);
    await check(admin, 'observe-logs-invalid-query');

    await page.getByLabel('Query').fill('{level>="warn", service="checkout"}');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('payment declined for order o-42').waitFor();
    await page.waitForFunction(() => {
      const d = (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } })
        .document;
      return d.querySelectorAll('table.logs > tbody > tr').length === 1;
    });
    expect(await page.getByText('cart viewed').count()).toBe(0);
    await page.getByText('payment declined for order o-42').click();
    await page
      .getByRole('table', { name: /Attributes of the entry/ })
      .getByText('o-42')
      .waitFor();
    await check(admin, 'observe-logs-search');

    await page.getByLabel('Level at least').selectOption('error');
    await page.getByLabel('Query').fill('');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('No log entries match.').waitFor();
    await check(admin, 'observe-logs-empty');
  });

  it('live-tails new log entries over server-sent events under the CSP', async () => {
    const { page } = admin;
    await page.goto(`${root}/logs`);
    await page.getByLabel('Service').fill(service);
    await page.getByRole('button', { name: 'Live tail' }).click();
    await page.getByRole('status').filter({ hasText: 'Live tail: live' }).waitFor();
    expect(await page.getByRole('button', { name: 'Live tail' }).getAttribute('aria-pressed')).toBe('true');
    await emitLog('tailed line 1');
    await page.getByText('tailed line 1').waitFor();
    await check(admin, 'observe-logs-live-tail');
    await page.getByRole('button', { name: 'Live tail' }).click();
    expect(await page.getByRole('button', { name: 'Live tail' }).getAttribute('aria-pressed')).toBe('false');
  });

  it('jumps from a log entry to its trace: the waterfall, span details and the linked logs', async () => {
    const { page } = admin;
    await page.goto(`${root}/logs?trace_id=${traceId}`);
    await page.getByText('payment declined for order o-42').waitFor();
    await page
      .getByRole('link', { name: `${traceId.slice(0, 8)}…` })
      .first()
      .click();
    await heading(page, `Trace ${traceId}`);
    const waterfall = page.getByRole('table', { name: 'Waterfall' });
    await waterfall.getByRole('button', { name: 'GET /cart' }).waitFor();
    await waterfall.getByRole('button', { name: 'db.query' }).click();
    await heading(page, 'Span db.query');
    await page.getByRole('table', { name: 'Attributes of span db.query' }).getByText('postgresql').waitFor();
    await page.getByRole('table', { name: 'Logs of this trace' }).getByText('payment declined').waitFor();
    await check(admin, 'observe-trace-waterfall');

    await page.goto(`${root}/traces`);
    await page.getByRole('table', { name: 'Traces' }).getByRole('link', { name: 'GET /cart' }).waitFor();
    await check(admin, 'observe-traces');

    await page.goto(`${root}/traces/${'0'.repeat(31)}1`);
    await page.getByRole('alert').filter({ hasText: 'Not found' }).waitFor();
    await check(admin, 'observe-trace-not-found');
  });

  it('charts a metric with a series per label value (uplot)', async () => {
    const { page } = admin;
    await page.goto(`${root}/metrics`);
    await heading(page, 'Metrics');
    await page.getByLabel('Metric', { exact: true }).selectOption('http_requests_total');
    await page.getByLabel('Group by').selectOption('route');
    await page.getByLabel('Aggregation').selectOption('max');
    await page.getByRole('button', { name: 'Chart' }).click();
    await page.locator('[data-testid="metric-chart"] canvas').waitFor();
    const legend = page.locator('.legend-list');
    await legend.getByText('route=/cart').waitFor();
    await legend.getByText('route=/pay').waitFor();
    await check(admin, 'observe-metrics-chart');
  });

  it('creates an alert rule in the editor (a bad query refused at its position), sees it fire, silences and disables it', async () => {
    const { page } = admin;
    await page.goto(`${root}/alerts`);
    await page.getByText('No alert rules yet.').waitFor();
    await check(admin, 'observe-alerts-empty');
    await page.getByRole('link', { name: 'New rule' }).click();
    await heading(page, 'New alert rule');
    await page.getByRole('button', { name: 'Save rule' }).click();
    await page.getByRole('alert').filter({ hasText: 'The name is required.' }).waitFor();

    await page.getByLabel('Name', { exact: true }).fill('checkout warnings');
    await page.getByLabel('Query').fill('count(logs{service="checkout", level>="warn"}[10m) > 0');
    await page.getByRole('button', { name: 'Save rule' }).click();
    const refusal = page.getByRole('alert').filter({ hasText: 'Invalid query' });
    await refusal.waitFor();
    expect(await refusal.textContent()).toContain("expected ']'");
    await check(admin, 'observe-alert-editor-invalid');

    await page.getByLabel('Query').fill('count(logs{service="checkout", level>="warn"}[10m]) > 0');
    await page.getByRole('button', { name: 'Save rule' }).click();
    await heading(page, 'Alert rule checkout warnings');

    const events = page.getByRole('table', { name: 'Alert events' });
    for (let i = 0; i < 60 && !(await events.isVisible()); i++) {
      await sleep(1000);
      await page.getByRole('button', { name: 'Refresh' }).click();
    }
    await events.getByText('firing').first().waitFor();
    await check(admin, 'observe-alert-firing');

    await page.getByRole('button', { name: 'Silence', exact: true }).click();
    await page.getByText(/Muted until/).waitFor();
    await page.getByRole('button', { name: 'End silence' }).waitFor();
    await check(admin, 'observe-alert-silenced');

    await page.goto(`${root}/alerts`);
    const toggle = page.getByRole('checkbox', { name: 'Enabled: checkout warnings' });
    expect(await toggle.isChecked()).toBe(true);
    await toggle.uncheck();
    let rules = await call('GET', `/api/observe/alerts?project_id=${projectId}`);
    for (let i = 0; i < 50 && rules.body.items[0].is_enabled; i++) {
      await sleep(200);
      rules = await call('GET', `/api/observe/alerts?project_id=${projectId}`);
    }
    expect(rules.body.items[0]).toMatchObject({ name: 'checkout warnings', is_enabled: false });
    expect(rules.body.items[0].silenced_until).not.toBeNull();
    await check(admin, 'observe-alerts-list');
  });

  it('shows the instance-wide pages and an empty session timeline', async () => {
    const { page } = admin;
    await page.goto('/observe/logs');
    await heading(page, 'Observe · Logs');
    await page.getByLabel('Project').selectOption({ label: 'admin/shop' });
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByText('cart viewed').first().waitFor();
    await check(admin, 'observe-instance-logs');
    await page.goto(`${root}/timeline/00000000-0000-4000-8000-000000000000`);
    await page.getByText('Nothing recorded for this session yet.').waitFor();
    await check(admin, 'observe-timeline-empty');
  });
  it('shows the forbidden state to a project viewer: instance-wide logs, and saving an alert rule', async () => {
    const user = await call('POST', '/api/users', {
      name: 'vera',
      email: 'vera@example.test',
      password: 'vera-password-123',
    });
    expect(user.status, JSON.stringify(user.body)).toBe(201);
    const member = await call('POST', `/api/projects/${projectId}/members`, { user: 'vera', role: 'viewer' });
    expect(member.status, JSON.stringify(member.body)).toBe(201);
    const vera = await openTab(browser, base);
    try {
      const { page } = vera;
      await page.goto('/login');
      await signIn(page, 'vera', 'vera-password-123');
      await page.goto('/observe/logs');
      await page.getByRole('alert').filter({ hasText: 'Forbidden.' }).waitFor();
      await check(vera, 'observe-logs-forbidden');
      await page.goto(`${root}/alerts/new`);
      await page.getByLabel('Name', { exact: true }).fill('not mine');
      await page.getByLabel('Query').fill('count(logs{level="error"}[10m]) > 5');
      await page.getByRole('button', { name: 'Save rule' }).click();
      await page.getByRole('alert').filter({ hasText: 'Forbidden.' }).waitFor();
      await check(vera, 'observe-alert-forbidden');
    } finally {
      await vera.context.close();
    }
  });
});
