import { declareReasons } from '../../core/errors.js';

/** Why the saved-search routes refuse (a bad query: `observe.invalid_query`). */
export const SAVED_SEARCH_REASONS = declareReasons('observe', {
  nameTaken: ['observe.saved_search_name_taken', 'you already have a saved search of this name (409)'],
  shareNeedsProject: [
    'observe.saved_search_share_needs_project',
    'only a search of a project can be shared with it (422)',
  ],
  notOwner: ['observe.saved_search_not_owner', 'only the owner changes or deletes a saved search (403)'],
});
