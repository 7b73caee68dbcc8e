// Replaced by the deployments pages (issue #20); routed from project.tsx's `deployments` section.
import type { ProjectProps } from './project';

export function Deployments(_props: ProjectProps) {
  return <p class="empty">Deployments are not shown here yet.</p>;
}
