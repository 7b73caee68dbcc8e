import { declareReasons } from '../core/errors.js';

export const SECRETS_REASONS = declareReasons('secrets', {
  valueTooLarge: ['secrets.value_too_large', 'the value is over 64 KiB of UTF-8'],
  notDefined: [
    'secrets.not_defined',
    'a referenced secret is not defined for the consumer scope (project or global)',
  ],
  invalidName: ['secrets.invalid_name', 'letters, digits and "_", not starting with a digit, at most 255'],
});
