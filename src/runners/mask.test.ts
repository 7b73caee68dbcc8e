import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createMasker } from './mask.js';

function maskAll(secrets: string[], chunks: Buffer[]): Buffer {
  const masker = createMasker(secrets);
  const out = chunks.map((c) => masker.push(c));
  out.push(masker.flush());
  return Buffer.concat(out);
}

function maskString(secrets: string[], text: string): string {
  return maskAll(secrets, [Buffer.from(text)]).toString('utf8');
}

function splitAt(data: Buffer, ...cuts: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const cut of [...cuts, data.length]) {
    chunks.push(data.subarray(prev, cut));
    prev = cut;
  }
  return chunks;
}

function bytes(data: Buffer): Buffer[] {
  return [...data].map((b) => Buffer.from([b]));
}

describe('createMasker', () => {
  it('replaces every occurrence of a secret', () => {
    expect(maskString(['s3cr3t'], 'token=s3cr3t; again s3cr3t.')).toBe('token=***; again ***.');
  });

  it('masks a value split at every possible position between two chunks', () => {
    const text = 'before hunter2-password after';
    const expected = 'before *** after';
    const data = Buffer.from(text);
    for (let cut = 0; cut <= data.length; cut++) {
      expect(maskAll(['hunter2-password'], splitAt(data, cut)).toString(), `cut at ${cut}`).toBe(expected);
    }
  });

  it('masks a value split at every pair of positions between three chunks', () => {
    const data = Buffer.from('xx abcdefgh yy abcdefgh');
    for (let a = 0; a <= data.length; a++) {
      for (let b = a; b <= data.length; b++) {
        expect(maskAll(['abcdefgh'], splitAt(data, a, b)).toString(), `cuts ${a},${b}`).toBe('xx *** yy ***');
      }
    }
  });

  it('masks when the stream arrives one byte at a time', () => {
    const data = Buffer.from('key: sk-live-1234567890 and sk-live-1234567890!');
    expect(maskAll(['sk-live-1234567890'], bytes(data)).toString()).toBe('key: *** and ***!');
  });

  it('hides every byte of overlapping secrets, whichever way they overlap', () => {
    expect(maskString(['abcd', 'cdef'], '1 abcdef 2')).toBe('1 *** 2');
    expect(maskString(['cdef', 'abcd'], '1 abcdef 2')).toBe('1 *** 2');
    // One value inside another: the longer one is hidden whole.
    expect(maskString(['pass', 'mypassword'], 'x mypassword y pass z')).toBe('x *** y *** z');
    // Overlapping occurrences of one value.
    expect(maskString(['aaaa'], 'baaaaaab')).toBe('b***b');
  });

  it('gives the same output for every split of overlapping secrets', () => {
    const secrets = ['abcd', 'cdef', 'efgh12'];
    const data = Buffer.from('0 abcdefgh12 1 cdef 2 abc 3 ef 4 abcd');
    const whole = maskAll(secrets, [data]).toString();
    expect(whole).toBe('0 *** 1 *** 2 abc 3 ef 4 ***');
    expect(maskAll(secrets, bytes(data)).toString()).toBe(whole);
    for (let a = 0; a <= data.length; a++) {
      for (let b = a; b <= data.length; b += 3) {
        expect(maskAll(secrets, splitAt(data, a, b)).toString(), `cuts ${a},${b}`).toBe(whole);
      }
    }
  });

  it('keeps a match that runs into held bytes masked while a longer candidate is still open', () => {
    const secrets = ['abcd', 'cdxyzw'];
    expect(maskAll(secrets, splitAt(Buffer.from('abcdxq'), 4, 5)).toString()).toBe('***xq');
    expect(maskAll(secrets, splitAt(Buffer.from('abcdxyzw!'), 4, 5, 7)).toString()).toBe('***!');
    expect(maskAll(secrets, splitAt(Buffer.from('abcdxy'), 4, 5)).toString()).toBe('***xy');
  });

  it('matches a brute-force reference on random streams and splits', () => {
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = 'ab';
    for (let round = 0; round < 300; round++) {
      const secrets = Array.from({ length: 1 + random(3) }, () =>
        Array.from({ length: 1 + random(4) }, () => alphabet[random(2)]).join(''),
      );
      const text = Array.from({ length: random(30) }, () => alphabet[random(2)] ?? 'x').join('');
      const data = Buffer.from(text);
      const cuts: number[] = [];
      for (let i = 1; i < data.length; i++) if (random(3) === 0) cuts.push(i);
      expect(maskAll(secrets, splitAt(data, ...cuts)).toString(), `${secrets} / ${text} / ${cuts}`).toBe(
        referenceMask(secrets, text),
      );
    }
  });

  it('matches the brute-force reference with many overlapping secrets (failure links of the matcher)', () => {
    const random = lcg(2024);
    for (let round = 0; round < 400; round++) {
      const secrets = Array.from({ length: 1 + random(6) }, () =>
        Array.from({ length: 1 + random(8) }, () => 'abc'[random(3)]).join(''),
      );
      const text = Array.from({ length: random(60) }, () => 'abc'[random(3)]).join('');
      const data = Buffer.from(text);
      const cuts: number[] = [];
      for (let i = 1; i < data.length; i++) if (random(4) === 0) cuts.push(i);
      expect(maskAll(secrets, splitAt(data, ...cuts)).toString(), `${secrets} / ${text} / ${cuts}`).toBe(
        referenceMask(secrets, text),
      );
    }
  });

  it('masks multibyte UTF-8 values split inside a character', () => {
    const secret = 'pässwörd-ключ-🔑';
    const data = Buffer.from(`héllo ${secret} wörld`);
    for (let cut = 0; cut <= data.length; cut++) {
      expect(maskAll([secret], splitAt(data, cut)).toString('utf8'), `cut at ${cut}`).toBe('héllo *** wörld');
    }
    expect(maskAll([secret], bytes(data)).toString('utf8')).toBe('héllo *** wörld');
  });

  it('passes output through untouched and holds nothing back when there are no secrets', () => {
    const masker = createMasker([]);
    const chunk = Buffer.from('partial line without newl');
    expect(masker.push(chunk)).toBe(chunk);
    expect(masker.flush().length).toBe(0);
    // Empty values are not secrets.
    const withEmpty = createMasker(['', '']);
    expect(withEmpty.push(Buffer.from('abc')).toString()).toBe('abc');
  });

  it('releases text that cannot start a secret immediately and holds at most length-1 bytes', () => {
    const masker = createMasker(['secret-value']);
    expect(masker.push(Buffer.from('hello world\n')).toString()).toBe('hello world\n');
    // "secret-va" may continue into the secret: held back.
    expect(masker.push(Buffer.from('log: secret-va')).toString()).toBe('log: ');
    // Turns out it was not the secret: released on the next chunk.
    expect(masker.push(Buffer.from('cation')).toString()).toBe('secret-vacation');
    expect(masker.push(Buffer.from('x secret-valu')).toString()).toBe('x ');
    expect(masker.flush().toString()).toBe('secret-valu');
  });

  it('masks a held partial secret that flush completes only if it is whole', () => {
    const masker = createMasker(['abcdef']);
    expect(masker.push(Buffer.from('go abcdef')).toString()).toBe('go ***');
    expect(masker.flush().length).toBe(0);
  });

  it('masks one-character secrets too (documented choice)', () => {
    expect(maskString(['x'], 'axbxc')).toBe('a***b***c');
  });

  it('masks each line of a multi-line secret on its own', () => {
    const pem = '-----BEGIN KEY-----\nMIIEvQIBADANBgkq\n-----END KEY-----';
    expect(maskString([pem], `key:\n${pem}\n`)).toBe('key:\n***\n');
    expect(maskString([pem], 'line 2 is MIIEvQIBADANBgkq here')).toBe('line 2 is *** here');
  });

  it('joins adjacent masked runs into one mask, however the chunks fall', () => {
    const data = Buffer.from('[tokentoken]');
    expect(maskAll(['token'], [data]).toString()).toBe('[***]');
    expect(maskAll(['token'], bytes(data)).toString()).toBe('[***]');
  });
});

/** Runs `script` with the secret in `$S`, as a step would, and returns its raw output. */
function shell(script: string, secret: string): Buffer {
  return execFileSync('/bin/sh', ['-c', script], {
    env: { S: secret, PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
}

function lcg(seed: number) {
  return (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
}

// Has a space, `/`, `?`, `&`, `=`, `+`, `~`, non-ASCII, and `>>>???` (base64 `+` and `/` at every alignment).
const SECRET = 'pa ss/w0rd?&=+~é>>>???x';
// Longer than one 76-column base64 line and one 60-column `xxd -p` line.
const LONG_SECRET = `sk_live_${'0123456789abcdefghijKLMNOPQRST!@#$%^'.repeat(2)}`;

describe('createMasker: encoded forms of a secret', () => {
  it.each([
    ['printf %s "$S" | base64', '***\n'],
    ['printf %s "$S" | base64 -w0', '***'],
    ['printf %s "$S" | basenc --base64url', '***\n'],
    ['printf %s "$S" | basenc --base64url | tr -d =', '***\n'],
    ['printf %s "$S" | openssl base64', '***\n'],
    ['printf %s "$S" | xxd -p', '***\n'],
    ['printf %s "$S" | xxd -p | tr a-f A-F', '***\n'],
    ['echo "token: $(printf %s "$S" | base64 -w0) end"', 'token: *** end\n'],
  ])('masks the output of `%s`', (script, expected) => {
    const output = shell(script, SECRET);
    expect(maskAll([SECRET], [output]).toString()).toBe(expected);
    expect(maskAll([SECRET], bytes(output)).toString()).toBe(expected);
  });

  it.each([
    ['printf %s "$S" | base64', '***\n***\n'],
    ['printf %s "$S" | openssl base64', '***\n***\n'],
    ['printf %s "$S" | xxd -p', '***\n***\n***\n'],
    ['printf %s "$S" | base64 -w0', '***'],
  ])('masks each line of the wrapped output of `%s` for a long secret', (script, expected) => {
    const output = shell(script, LONG_SECRET);
    expect(output.toString().split('\n').length).toBe(expected.split('\n').length);
    expect(maskAll([LONG_SECRET], [output]).toString()).toBe(expected);
  });

  it.each([
    ['a', 2],
    ['ab', 3],
    ['abc', 4],
    ['abcd', 6],
  ])(
    'masks the base64 of the secret after the prefix %j: only the characters holding prefix bits stay',
    (prefix, visible) => {
      const output = shell(`printf '${prefix}%s' "$S" | base64`, SECRET);
      expect(maskAll([SECRET], [output]).toString()).toBe(`${output.subarray(0, visible)}***\n`);
      // And followed by more data (`echo` adds a newline): the characters mixing its bits stay too.
      const more = shell(`echo "${prefix}$S" | base64 -w0`, SECRET).toString();
      const masked = maskString([SECRET], more);
      expect(masked.startsWith(`${more.slice(0, visible)}***`)).toBe(true);
      expect(masked.length - visible - 3).toBeLessThanOrEqual(4);
    },
  );

  it('masks base64 (both alphabets, padded or not) at every alignment, with any bytes before and after', () => {
    const random = lcg(7);
    const secretBytes = Buffer.from(SECRET);
    for (let round = 0; round < 200; round++) {
      const before = Buffer.from(Array.from({ length: random(6) }, () => random(256)));
      const after = Buffer.from(Array.from({ length: random(6) }, () => random(256)));
      const stream = Buffer.concat([before, secretBytes, after]);
      const variants = [
        stream.toString('base64'),
        stream.toString('base64url'),
        stream.toString('base64').replace(/=+$/, ''),
        stream.toString('base64url').replace(/-/g, '+').replace(/_/g, '/'),
      ];
      for (const encoded of variants) {
        // Characters made only of the secret's bits are hidden; when nothing follows, the last ones too.
        const head = Math.ceil((8 * before.length) / 6);
        const tail =
          after.length === 0 ? '' : encoded.slice(Math.floor((8 * stream.length - 8 * after.length) / 6));
        const what = `before ${before.toString('hex')} after ${after.toString('hex')}: ${encoded}`;
        const masked = maskString([SECRET], encoded);
        // The character mixing the secret's last bits with the next byte's is hidden too when those
        // bits happen to be zero (it then equals the secret's own final character): one more, never less.
        expect(
          [`${encoded.slice(0, head)}***${tail}`, `${encoded.slice(0, head)}***${tail.slice(1)}`],
          what,
        ).toContain(masked);
        // Chunk-safe: the same output however the encoded text is split.
        const data = Buffer.from(encoded);
        const cuts: number[] = [];
        for (let i = 1; i < data.length; i++) if (random(4) === 0) cuts.push(i);
        expect(maskAll([SECRET], splitAt(data, ...cuts)).toString(), `${what} / ${cuts}`).toBe(masked);
      }
    }
  });

  it('masks the hex forms, lower and upper case', () => {
    const hex = Buffer.from(SECRET).toString('hex');
    expect(maskString([SECRET], `sum ${hex} ok`)).toBe('sum *** ok');
    expect(maskString([SECRET], `sum ${hex.toUpperCase()} ok`)).toBe('sum *** ok');
  });

  it('masks the URL-encoded forms: encodeURIComponent, form encoding with +, lower-case escapes', () => {
    const component = encodeURIComponent(SECRET);
    expect(component).not.toBe(SECRET);
    const url = `GET https://api.example.com/v1?token=${component}&page=2`;
    expect(maskString([SECRET], url)).toBe('GET https://api.example.com/v1?token=***&page=2');
    const form = new URLSearchParams({ user: 'kira', password: SECRET }).toString();
    expect(form).toContain('+');
    expect(maskString([SECRET], form)).toBe('user=kira&password=***');
    expect(maskString([SECRET], `q=${component.replace(/%20/g, '+')}`)).toBe('q=***');
    const lower = component.replace(/%[0-9A-F]{2}/g, (e) => e.toLowerCase());
    expect(maskString([SECRET], `q=${lower}`)).toBe('q=***');
  });

  it('masks the encoded forms of a secret stored with a trailing newline', () => {
    const stored = `${SECRET}\n`;
    expect(maskAll([stored], [shell('printf %s "$S" | base64', SECRET)]).toString()).toBe('***\n');
    expect(maskString([stored], Buffer.from(SECRET).toString('hex'))).toBe('***');
  });

  it('gives the same output for every split of a text holding every form', () => {
    const secretBytes = Buffer.from(SECRET);
    const text = [
      `plain ${SECRET}`,
      `b64 ${secretBytes.toString('base64')}`,
      `b64url ${Buffer.concat([Buffer.from('x'), secretBytes]).toString('base64url')}`,
      `hex ${secretBytes.toString('hex').toUpperCase()}`,
      `url ${encodeURIComponent(SECRET)}`,
      '',
    ].join('\n');
    const data = Buffer.from(text);
    const whole = maskAll([SECRET], [data]).toString();
    expect(whole).toBe('plain ***\nb64 ***\nb64url eH***\nhex ***\nurl ***\n');
    expect(maskAll([SECRET], bytes(data)).toString()).toBe(whole);
    for (let a = 0; a <= data.length; a++) {
      for (let b = a; b <= data.length; b += 7) {
        expect(maskAll([SECRET], splitAt(data, a, b)).toString(), `cuts ${a},${b}`).toBe(whole);
      }
    }
  });

  it('leaves text that holds no form of a secret byte for byte unchanged, and releases it at once', () => {
    const random = lcg(99);
    const noise = Buffer.from(Array.from({ length: 4096 }, () => random(256)));
    const text = Buffer.concat([
      Buffer.from('$ npm test\n> app@1.0.0 test\n  ✓ 42 tests passed (1.2 s)\n'),
      Buffer.from(`commit ${'0123456789abcdef'.repeat(2)}deadbeef\n`),
      Buffer.from(`${noise.toString('base64')}\n${noise.toString('hex')}\n`),
      Buffer.from(`GET https://example.com/?q=${encodeURIComponent('a b/c')}&r=%2F\n`),
      noise,
    ]);
    const masker = createMasker([SECRET, LONG_SECRET, 'zq']);
    const out: Buffer[] = [];
    for (let at = 0; at < text.length; at += 1000) out.push(masker.push(text.subarray(at, at + 1000)));
    out.push(masker.flush());
    // 'zq' itself would be masked; the text has none.
    expect(text.includes('zq')).toBe(false);
    expect(Buffer.concat(out).equals(text)).toBe(true);
    expect(masker.push(Buffer.from('hello world\n')).toString()).toBe('hello world\n');
  });

  it('does not mask encoded forms shorter than 6 characters (documented minimum)', () => {
    // 'zq': base64 `enE=` / `enE`, hex `7a71` are too short to be masked on their own; the value is.
    expect(maskString(['zq'], 'enE= enE 7a71 7A71 zq')).toBe('enE= enE 7a71 7A71 ***');
    // 'abcd': base64 `YWJjZA==` and hex `61626364` are long enough.
    expect(maskString(['abcd'], 'YWJjZA== 61626364 YWJjZA')).toBe('*** *** ***');
  });
});

/** Marks every byte covered by any occurrence, then writes one `***` per maximal covered run. */
function referenceMask(secrets: string[], text: string): string {
  const covered = new Array<boolean>(text.length).fill(false);
  for (const s of secrets) {
    if (!s) continue;
    for (let i = 0; i + s.length <= text.length; i++) {
      if (text.slice(i, i + s.length) === s) for (let j = i; j < i + s.length; j++) covered[j] = true;
    }
  }
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (!covered[i]) out += text[i];
    else if (i === 0 || !covered[i - 1]) out += '***';
  }
  return out;
}
