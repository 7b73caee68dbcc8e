/**
 * Status badges of deployments, agent sessions and alerts (small: the dashboard, in the first-load
 * chunk, uses them too). ui.tsx's Status knows the forge's and CI's words; these are the others.
 */
const CLASS: Record<string, string> = {
  healthy: 'ok',
  completed: 'ok',
  success: 'ok',
  active: 'ok',
  ok: 'ok',
  resolved: 'ok',
  running: 'run',
  syncing: 'run',
  rollback: 'run',
  pending: 'wait',
  degraded: 'wait',
  warning: 'wait',
  failed: 'bad',
  failure: 'bad',
  firing: 'bad',
  critical: 'bad',
  stopped: 'off',
  info: 'off',
};

/** A badge whose text says the state (colour is never the only signal). */
export function Badge({ s, label }: { s: string; label?: string }) {
  return (
    <span class={`badge ${CLASS[s] ?? 'off'}`} title={label}>
      {s}
    </span>
  );
}

/** The version a deployment (or one of its history entries) names: image, else commit, else artifact. */
export function versionText(d: {
  image_ref: string | null;
  commit_sha: string | null;
  artifact_id: string | null;
}): string {
  if (d.image_ref) return d.image_ref;
  if (d.commit_sha) return d.commit_sha.slice(0, 10);
  if (d.artifact_id) return `artifact ${d.artifact_id.slice(0, 8)}`;
  return '—';
}

export const SESSION_ENDED = ['completed', 'failed', 'stopped'];
