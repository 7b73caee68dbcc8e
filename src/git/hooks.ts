import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Push policy is decided by the platform (who pushes, which refs are protected) and passed to git
 * in the environment of one `git receive-pack` run; these two platform-owned hooks, selected per run
 * with `-c core.hooksPath=…` (nothing is installed in the repositories), do what only git can do at
 * that point: check ancestry against the quarantined objects before any ref moves, and report the
 * ref updates that really happened. Whatever pre-receive prints reaches the pusher as `remote: …`.
 */
const PRE_RECEIVE = `#!/bin/sh
# Platform push policy. PLATFORM_NO_FORCE / PLATFORM_NO_DELETE / PLATFORM_NO_DIRECT_PUSH:
# space-separated ref globs (a branch whose rule requires approvals or a pipeline takes no direct
# push at all: it changes through merge requests).
set -f
status=0
while read old new ref; do
  case "$new" in
    *[!0]*) deleting=0 ;;
    *) deleting=1 ;;
  esac
  case "$old" in
    *[!0]*) creating=0 ;;
    *) creating=1 ;;
  esac
  if [ "$deleting" = 0 ]; then
    for pattern in $PLATFORM_NO_DIRECT_PUSH; do
      case "$ref" in
        $pattern)
          echo "push rejected: $ref is protected: changes go through a merge request (approvals or a pipeline are required)" >&2
          status=1 ;;
      esac
    done
  fi
  if [ "$deleting" = 1 ]; then
    for pattern in $PLATFORM_NO_DELETE; do
      case "$ref" in
        $pattern)
          echo "push rejected: $ref is protected and cannot be deleted" >&2
          status=1 ;;
      esac
    done
  elif [ "$creating" = 0 ]; then
    for pattern in $PLATFORM_NO_FORCE; do
      case "$ref" in
        $pattern)
          if ! git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
            echo "push rejected: $ref is protected: force push (non-fast-forward) is not allowed" >&2
            status=1
          fi ;;
      esac
    done
  fi
done
exit $status
`;

const POST_RECEIVE = `#!/bin/sh
# Records the ref updates git performed, for the platform's push events.
[ -n "$PLATFORM_PUSH_LOG" ] && cat >> "$PLATFORM_PUSH_LOG"
exit 0
`;

export async function installHooks(dataDir: string): Promise<string> {
  const dir = path.join(dataDir, 'git-hooks');
  await mkdir(dir, { recursive: true });
  for (const [name, body] of [
    ['pre-receive', PRE_RECEIVE],
    ['post-receive', POST_RECEIVE],
  ] as const) {
    const file = path.join(dir, name);
    await writeFile(file, body, { mode: 0o755 });
    await chmod(file, 0o755);
  }
  return dir;
}
