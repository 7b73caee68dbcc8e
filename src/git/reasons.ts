import { declareReasons } from '../core/errors.js';

export const GIT_REASONS = declareReasons('git', {
  lockTaken: ['git.lock_taken', 'the path is already locked (the body carries the existing lock)'],
  lockHeldByOther: [
    'git.lock_held_by_other',
    "the lock is somebody else's: unlocking it takes force, by the project owner or an administrator",
  ],
});
