import { createHmac } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

/**
 * The one outbound HTTP client for calls the platform makes on a user's behalf (webhooks,
 * notification endpoints). It guards against SSRF: only http/https, the host name is resolved once
 * and the connection is pinned to the address that was checked (no second resolution an attacker's
 * DNS could answer differently), internal address ranges are refused unless allow-listed, and
 * redirects are never followed (a 3xx is returned to the caller as is).
 */

export type OutboundErrorKind = 'invalid_url' | 'blocked' | 'timeout' | 'network' | 'too_large';

export class OutboundError extends Error {
  constructor(
    readonly kind: OutboundErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'OutboundError';
  }

  /** Worth retrying later: the target may come back. A refused or malformed URL never will. */
  get transient(): boolean {
    return this.kind === 'timeout' || this.kind === 'network';
  }
}

const blocked = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network", includes the unspecified address
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, includes cloud metadata 169.254.169.254
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // TEST-NET-1 (documentation; also used for lab and cloud-internal interfaces)
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // TEST-NET-2
  ['203.0.113.0', 24], // TEST-NET-3
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved and broadcast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128],
  ['64:ff9b::', 96], // NAT64: would reach IPv4 addresses through a translator
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // deprecated site-local
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6');
}

/**
 * The IPv4 address an IPv6 address stands for, when it embeds one: IPv4-mapped (::ffff:0:0/96),
 * IPv4-translated (::ffff:0:0:0/96, SIIT), IPv4-compatible (::a.b.c.d, deprecated) and 6to4
 * (2002:aabb:ccdd::/48). The kernel or a translator turns those into IPv4 traffic to that address,
 * so they are judged by the IPv4 rules: `[::ffff:0:7f00:1]` is 127.0.0.1.
 */
function embeddedIpv4(address: string): string | null {
  const groups = expandIpv6(address.toLowerCase());
  if (!groups) return null;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0, hi = 0, lo = 0] = groups;
  if (g0 === 0x2002) return v4(g1, g2);
  if (g0 !== 0 || g1 !== 0 || g2 !== 0 || g3 !== 0) return null;
  if (g4 === 0xffff && g5 === 0) return v4(hi, lo); // translated
  if (g4 !== 0) return null;
  if (g5 === 0xffff || (g5 === 0 && (hi !== 0 || lo > 1))) return v4(hi, lo); // mapped, compatible
  return null;
}

/** The eight 16-bit groups of an IPv6 address (a dotted IPv4 tail becomes the last two). */
function expandIpv6(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail !== undefined ? 8 - h.length - t.length : 0;
  const all = [...h, ...Array<string>(Math.max(0, fill)).fill('0'), ...t];
  return all.length === 8 ? all.map((g) => Number.parseInt(g, 16)) : null;
}

/** True for loopback, private, link-local, multicast, unspecified and reserved addresses. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return blocked.check(address, 'ipv4');
  if (family === 6) {
    const v4 = embeddedIpv4(address);
    if (v4) return blocked.check(v4, 'ipv4');
    return blocked.check(address, 'ipv6');
  }
  return true;
}

/** HMAC-SHA256 of the exact body bytes, as sent in `X-Platform-Signature`. */
export function signPayload(secret: string | Buffer, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface OutboundOptions {
  /**
   * Host names, IP addresses or CIDR ranges (`10.0.0.0/8`, `fd00::/8`) that may be reached although
   * they are internal: on-premises targets, and 127.0.0.1 in tests.
   */
  allow?: readonly string[];
  /** Whole-request deadline; default 10 s. */
  timeoutMs?: number;
  /** Response bodies are read up to this size (default 1 MiB); more is an error. */
  maxResponseBytes?: number;
  /** Replaceable for tests of host-name handling; default node's resolver. */
  resolve?: (hostname: string) => Promise<{ address: string; family: number }[]>;
}

export interface OutboundRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface OutboundResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A checked target: where the connection goes. */
export interface ResolvedTarget {
  url: URL;
  address: string;
  family: 4 | 6;
}

export class OutboundClient {
  private readonly allowNets = new BlockList();
  private readonly allowHosts = new Set<string>();
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;
  private readonly resolve: NonNullable<OutboundOptions['resolve']>;

  constructor(options: OutboundOptions = {}) {
    for (const entry of options.allow ?? []) {
      const [net, prefix] = entry.trim().split('/');
      if (!net) continue;
      const family = isIP(net);
      if (family === 0) {
        this.allowHosts.add(net.toLowerCase());
        continue;
      }
      const type = family === 4 ? 'ipv4' : 'ipv6';
      const bits = prefix === undefined ? (family === 4 ? 32 : 128) : Number(prefix);
      if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
        throw new Error(`invalid allow-list entry ${entry}`);
      }
      this.allowNets.addSubnet(net, bits, type);
    }
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxResponseBytes = options.maxResponseBytes ?? 1024 * 1024;
    this.resolve = options.resolve ?? ((host) => dnsLookup(host, { all: true, verbatim: true }));
  }

  private allowed(hostname: string, address: string): boolean {
    if (this.allowHosts.has(hostname.toLowerCase())) return true;
    const family = isIP(address);
    return family !== 0 && this.allowNets.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * Parses and resolves a URL and checks every address it resolves to (a name with one internal
   * address is refused outright). Throws OutboundError('invalid_url' | 'blocked' | 'network').
   */
  async check(rawUrl: string): Promise<ResolvedTarget> {
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new OutboundError('invalid_url', 'not a valid URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new OutboundError('invalid_url', `scheme ${url.protocol.replace(/:$/, '')} is not allowed`);
    }
    if (url.username || url.password)
      throw new OutboundError('invalid_url', 'credentials in URLs are not allowed');
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    let addresses: { address: string; family: number }[];
    if (isIP(hostname)) addresses = [{ address: hostname, family: isIP(hostname) }];
    else {
      try {
        addresses = await this.resolve(hostname);
      } catch (err) {
        throw new OutboundError('network', `cannot resolve ${hostname}: ${(err as Error).message}`);
      }
    }
    if (addresses.length === 0) throw new OutboundError('network', `${hostname} has no address`);
    for (const a of addresses) {
      if (isBlockedAddress(a.address) && !this.allowed(hostname, a.address)) {
        throw new OutboundError('blocked', `${hostname} resolves to a non-public address (${a.address})`);
      }
    }
    const first = addresses[0]!;
    return { url, address: first.address, family: first.family === 6 ? 6 : 4 };
  }

  /** One request, no redirects followed; any status is returned (the caller decides what is success). */
  async request(rawUrl: string, init: OutboundRequest = {}): Promise<OutboundResponse> {
    const target = await this.check(rawUrl);
    const { url, address, family } = target;
    // The connection goes to the checked address whatever the name resolves to by now.
    const pinned: LookupFunction = (_hostname, options, callback) => {
      if ((options as { all?: boolean }).all) {
        (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, [
          { address, family },
        ]);
      } else callback(null, address, family);
    };
    const transport = url.protocol === 'https:' ? https : http;
    const body = init.body === undefined ? undefined : Buffer.from(init.body);
    return new Promise<OutboundResponse>((resolve, reject) => {
      let settled = false;
      const fail = (err: OutboundError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        req.destroy();
        reject(err);
      };
      const req = transport.request(
        url,
        {
          method: init.method ?? (body ? 'POST' : 'GET'),
          headers: {
            'user-agent': 'platform-outbound/1',
            ...init.headers,
            ...(body ? { 'content-length': String(body.length) } : {}),
          },
          lookup: pinned,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > this.maxResponseBytes) {
              fail(new OutboundError('too_large', `response larger than ${this.maxResponseBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', (err) => fail(new OutboundError('network', err.message)));
          res.on('end', () => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
          });
        },
      );
      const timer = setTimeout(
        () => fail(new OutboundError('timeout', `no complete response within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      req.on('error', (err) => fail(new OutboundError('network', err.message)));
      req.end(body);
    });
  }
}
