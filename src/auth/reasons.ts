import { declareReasons } from '../core/errors.js';

export const AUTH_REASONS = declareReasons('auth', {
  rateLimited: [
    'auth.rate_limited',
    'too many failed attempts from this address or for this name; retry after Retry-After',
  ],
  invalidCredentials: ['auth.invalid_credentials', 'the name and password do not match an active human user'],
  tokenInvalid: ['auth.token_invalid', 'the token is unknown, revoked or its user is deactivated'],
  tokenExpired: ['auth.token_expired', 'the token has passed its expires_at'],
  sessionExpired: ['auth.session_expired', 'the session cookie is unknown or expired; sign in again'],
  malformedCredentials: [
    'auth.malformed_credentials',
    'the Authorization header is not Bearer or well-formed Basic',
  ],
  wrongOldPassword: ['auth.wrong_old_password', 'old_password does not match the current password'],
  oldPasswordRequired: ['auth.old_password_required', 'changing your own password needs old_password'],
  selfDeactivation: ['auth.self_deactivation', 'a user cannot deactivate themselves'],
  userTaken: ['auth.user_taken', 'the user name (ignoring case) or the e-mail is already in use'],
  userDeactivated: ['auth.user_deactivated', 'the user is deactivated'],
  passwordRequired: ['auth.password_required', 'a human user needs a password'],
  tokenAlreadyRevoked: ['auth.token_already_revoked', 'the token is already revoked'],
  tokenExceedsParent: [
    'auth.token_exceeds_parent',
    'a token cannot create a token stronger than itself (expiry, scopes, project)',
  ],
  expiryInPast: ['auth.expiry_in_past', 'expires_at must be in the future'],
});
