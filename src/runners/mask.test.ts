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
