/**
 * The observability pages: logs (filters, the query language, live tail), traces (list, waterfall),
 * metrics (uplot charts, loaded on first use), alerts (rules, editor, history, silences) and a
 * session's timeline. Mounted in a project (`/projects/:o/:n/observe/...`) and instance-wide (`/observe/...`).
 */
import { lazyPage } from '../../lazy';
import { Page, Tabs } from '../../ui';
import { Alerts } from './alerts';
import { Logs } from './logs';
import type { ObserveContext } from './shared';
import { Timeline } from './timeline';
import { Traces } from './traces';
import './observe.css';

export interface ObserveProps {
  /** Set inside a project; absent on the instance-wide pages. */
  project?: { id: string; full_name: string } | undefined;
  base: string;
  section?: string | undefined;
  item?: string | undefined;
}

// uplot (and its CSS) only load with the metrics page.
const Metrics = lazyPage<ObserveContext>(() => import('./metrics'), 'Metrics');

const SECTIONS: [string, string][] = [
  ['Logs', 'logs'],
  ['Traces', 'traces'],
  ['Metrics', 'metrics'],
  ['Alerts', 'alerts'],
];

export function Observe(props: ObserveProps) {
  const section = props.section ?? 'logs';
  const ctx: ObserveContext = { project: props.project, base: props.base, item: props.item };
  const label = SECTIONS.find(([, s]) => s === section)?.[0] ?? (section === 'timeline' ? 'Timeline' : '');
  const tabs = <Tabs items={SECTIONS.map(([l, s]) => [l, `${props.base}/${s}`])} current={label} />;
  let body = null;
  if (section === 'logs') body = <Logs {...ctx} />;
  else if (section === 'traces') body = <Traces {...ctx} />;
  else if (section === 'metrics') body = <Metrics {...ctx} />;
  else if (section === 'alerts') body = <Alerts {...ctx} />;
  else if (section === 'timeline') body = <Timeline {...ctx} />;
  else
    return (
      <Page title="Observe">
        {tabs}
        <p class="empty">There is no observability page named “{section}”.</p>
      </Page>
    );
  // Inside a project the project page already has its heading; instance-wide the section gets one.
  if (props.project)
    return (
      <div class="observe">
        {tabs}
        {body}
      </div>
    );
  return (
    <Page title={`Observe · ${label}`}>
      <div class="observe">
        {tabs}
        {body}
      </div>
    </Page>
  );
}
