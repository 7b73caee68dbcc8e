import { SMTPServer } from 'smtp-server';
import { describe, expect, it } from 'vitest';
import { classifySmtpError, Mailer, safeSubject, validAddress } from './email.js';
import { emailedByDefault } from './types.js';

describe('e-mail header safety', () => {
  it.each(['user@example.com', 'first.last+tag@sub.example.org', 'platform@localhost'])(
    'accepts the mailbox %s',
    (a) => {
      expect(validAddress(a)).toBe(a);
    },
  );

  it.each([
    'user@example.com\r\nBcc: x@example.com',
    'user@example.com, other@example.com',
    'Name <user@example.com>',
    'user @example.com',
    'no-at-sign',
    '',
    null,
  ])('refuses %j', (a) => {
    expect(validAddress(a)).toBeNull();
  });

  it('puts subjects on one bounded line', () => {
    expect(safeSubject('a\r\nBcc: x@y\tz')).toBe('a Bcc: x@y z');
    expect(safeSubject('\r\n')).toBe('(no subject)');
    expect(safeSubject('x'.repeat(500))).toHaveLength(200);
  });
});

describe('SMTP failure classification', () => {
  it('retries connection problems and 4xx replies, not 5xx replies', () => {
    expect(
      classifySmtpError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ESOCKET' })).transient,
    ).toBe(true);
    expect(classifySmtpError(Object.assign(new Error('try later'), { responseCode: 451 })).transient).toBe(
      true,
    );
    const permanent = classifySmtpError(Object.assign(new Error('no such user'), { responseCode: 550 }));
    expect(permanent.transient).toBe(false);
    expect(permanent.message).toBe('smtp: no such user');
  });
});

describe('default channels', () => {
  it('e-mails failures and alerts only', () => {
    for (const t of [
      'pipeline.failed',
      'alert.fired',
      'alert.resolved',
      'deployment.failed',
      'session.failed',
    ]) {
      expect(emailedByDefault(t), t).toBe(true);
    }
    for (const t of ['pipeline.succeeded', 'mr.opened', 'issue.assigned', 'session.finished']) {
      expect(emailedByDefault(t), t).toBe(false);
    }
  });
});

describe('Mailer.verify (platform doctor)', () => {
  const settings = (port: number, extra: Record<string, unknown> = {}) => ({
    smtp_host: '127.0.0.1',
    smtp_port: port,
    smtp_security: 'none' as const,
    smtp_user: undefined,
    smtp_password: undefined,
    smtp_from: 'platform@localhost',
    ...extra,
  });

  it('succeeds against a real SMTP server and names the failure when authentication is refused', async () => {
    const server = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      onAuth: (auth, _session, done) =>
        auth.username === 'ok' ? done(null, { user: 'ok' }) : done(new Error('bad credentials')),
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.server.address() as { port: number }).port;
    try {
      const good = new Mailer(settings(port, { smtp_user: 'ok', smtp_password: 'pw' }), 5000);
      await expect(good.verify()).resolves.toBeUndefined();
      good.close();
      const bad = new Mailer(settings(port, { smtp_user: 'nope', smtp_password: 'pw' }), 5000);
      await expect(bad.verify()).rejects.toThrow(/bad credentials|Invalid login|535/);
      bad.close();
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('fails when nothing listens', async () => {
    const mailer = new Mailer(settings(1), 2000);
    await expect(mailer.verify()).rejects.toThrow();
    mailer.close();
  });
});
