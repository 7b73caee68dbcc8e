import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  mail: ParsedMail;
  rcptTo: string[];
}

export interface TestSmtp {
  port: number;
  received: ReceivedMail[];
  to(address: string): ReceivedMail[];
  /** The PLATFORM_SMTP_* settings that send through this server. */
  config: Record<string, string>;
  close(): Promise<void>;
}

/** A real SMTP server on loopback (smtp-server) keeping every accepted message parsed (mailparser). */
export async function startTestSmtp(): Promise<TestSmtp> {
  const received: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (mail) => {
          received.push({ mail, rcptTo: session.envelope.rcptTo.map((r) => r.address) });
          callback();
        },
        (err: Error) => callback(err),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    received,
    to: (address) => received.filter((r) => r.rcptTo.includes(address)),
    config: {
      PLATFORM_SMTP_HOST: '127.0.0.1',
      PLATFORM_SMTP_PORT: String(port),
      PLATFORM_SMTP_SECURITY: 'none',
      PLATFORM_SMTP_FROM: 'platform@example.test',
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
