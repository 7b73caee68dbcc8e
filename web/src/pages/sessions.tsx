// Replaced by the agent session pages (issue #20); routed from project.tsx's `sessions` section.
import type { ProjectProps } from './project';

export function Sessions(_props: ProjectProps) {
  return <p class="empty">Agent sessions are not shown here yet.</p>;
}
