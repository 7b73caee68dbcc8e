import { CronExpressionParser } from 'cron-parser';

// @secondly would fire faster than the schedule loop can evaluate; the others are 5-field equivalents.
const ALIASES = new Set([
  '@yearly',
  '@annually',
  '@monthly',
  '@weekly',
  '@daily',
  '@hourly',
  '@minutely',
  '@weekdays',
  '@weekends',
]);

function parseUtc(expr: string, after: Date) {
  return CronExpressionParser.parse(expr, { currentDate: after, tz: 'UTC' });
}

/**
 * Standard 5-field cron (minute hour day-of-month month day-of-week) or an @alias, evaluated in UTC.
 * cron-parser alone is too lenient for a schedule: it fills missing fields with `*`, takes a sixth
 * field as seconds, and its `H` picks a random value on every parse (each instance would fire at a
 * different time), so those are refused here.
 */
export function validateCron(expr: string): void {
  const fail = (reason: string): never => {
    throw new Error(`invalid cron expression ${JSON.stringify(expr)}: ${reason}`);
  };
  if (typeof expr !== 'string') fail('expected a string');
  const text = expr.trim();
  if (text === '') fail('it is empty');
  if (text.startsWith('@')) {
    if (!ALIASES.has(text)) fail(`unknown alias (use one of ${[...ALIASES].join(', ')})`);
  } else {
    const fields = text.split(/\s+/);
    if (fields.length !== 5) {
      fail(`expected 5 fields (minute hour day-of-month month day-of-week), got ${fields.length}`);
    }
    if (fields.some((f) => /h/i.test(f.replace(/thu/gi, ''))))
      fail('the H (hash) character is not supported');
  }
  try {
    parseUtc(text, new Date(0)).next();
  } catch (err) {
    fail((err as Error).message);
  }
}

/** The next fire time strictly after `after`, in UTC. Throws like validateCron. */
export function nextCronRun(expr: string, after: Date): Date {
  validateCron(expr);
  return parseUtc(expr.trim(), after).next().toDate();
}
