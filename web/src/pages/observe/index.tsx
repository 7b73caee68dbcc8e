// Replaced by the observability pages (issue #20): a project's `observe` section
// (/projects/:owner/:name/observe/:item) and the instance-wide /observe/:section/:item.
export interface ObserveProps {
  /** Set inside a project; absent on the instance-wide pages. */
  project?: { id: string; full_name: string } | undefined;
  base: string;
  section?: string | undefined;
  item?: string | undefined;
}

export function Observe(_props: ObserveProps) {
  return <p class="empty">Observability is not shown here yet.</p>;
}
