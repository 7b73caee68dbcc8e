import nodemailer, { type Transporter } from 'nodemailer';
import type { Config } from '../config.js';

/** A delivery failure, and whether trying again later may succeed. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

/**
 * A bare mailbox (`local@domain`) and nothing else: no display name, spaces, angle brackets, commas
 * or line breaks, so it cannot add a header or a recipient. Single-label domains (`localhost`) are
 * accepted: the default sender is `platform@localhost`.
 */
const MAILBOX =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function validAddress(value: string | null | undefined): string | null {
  if (!value || value.length > 254) return null;
  return MAILBOX.test(value) ? value : null;
}

/** A subject on one line: control characters (CR/LF included) become spaces; length bounded. */
export function safeSubject(subject: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point.
  const line = subject.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return (line.length > 200 ? `${line.slice(0, 199)}…` : line) || '(no subject)';
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export interface OutgoingEmail {
  to: string;
  subject: string;
  text: string;
  /** Notification id: the Message-ID's local part, for tracing a delivery. */
  id: string;
}

/** Sends notification e-mail over SMTP (nodemailer) with the smtp_* settings. */
export class Mailer {
  private readonly transport: Transporter;
  private readonly from: string;

  constructor(
    config: Pick<
      Config,
      'smtp_host' | 'smtp_port' | 'smtp_security' | 'smtp_user' | 'smtp_password' | 'smtp_from'
    >,
    timeoutMs: number,
  ) {
    const from = validAddress(config.smtp_from.replace(/^.*<([^>]+)>\s*$/, '$1'));
    if (!from)
      throw new Error(`PLATFORM_SMTP_FROM is not a valid address: ${JSON.stringify(config.smtp_from)}`);
    this.from = from;
    this.transport = nodemailer.createTransport({
      host: config.smtp_host,
      port: config.smtp_port,
      secure: config.smtp_security === 'tls',
      requireTLS: config.smtp_security === 'starttls',
      ignoreTLS: config.smtp_security === 'none',
      ...(config.smtp_user ? { auth: { user: config.smtp_user, pass: config.smtp_password ?? '' } } : {}),
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
      disableFileAccess: true,
      disableUrlAccess: true,
    });
  }

  /** Connects, greets, negotiates TLS and authenticates as configured, then hangs up (`platform doctor`). */
  async verify(): Promise<void> {
    await this.transport.verify();
  }

  async send(mail: OutgoingEmail): Promise<void> {
    const to = validAddress(mail.to);
    if (!to) throw new DeliveryError('invalid recipient address', false);
    const html = `<!doctype html><html><body><p>${escapeHtml(mail.text).replace(/\r?\n/g, '<br>\n')}</p></body></html>`;
    try {
      await this.transport.sendMail({
        from: this.from,
        to,
        subject: safeSubject(mail.subject),
        text: mail.text,
        html,
        messageId: `<${mail.id}@platform.notifications>`,
        disableFileAccess: true,
        disableUrlAccess: true,
      });
    } catch (err) {
      throw classifySmtpError(err);
    }
  }

  close(): void {
    this.transport.close();
  }
}

/** SMTP 4xx replies and connection problems are worth retrying; 5xx replies are not. */
export function classifySmtpError(err: unknown): DeliveryError {
  const e = err as { message?: string; code?: string; responseCode?: number };
  const message = `smtp: ${e.message ?? String(err)}`;
  if (typeof e.responseCode === 'number') {
    return new DeliveryError(message, e.responseCode < 500);
  }
  if (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') return new DeliveryError(message, false);
  // Connection problems and anything unrecognised (auth misconfiguration an admin may fix) are
  // retried; the attempt limit bounds the cost of being wrong.
  return new DeliveryError(message, true);
}
