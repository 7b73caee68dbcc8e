import { declareReasons } from '../../core/errors.js';

/** Why the live tail refuses (a bad `query`: `observe.invalid_query`). */
export const TAIL_REASONS = declareReasons('observe', {
  tooManyTails: [
    'observe.too_many_tails',
    'this instance serves its maximum of live tails; retry later (503)',
  ],
});
