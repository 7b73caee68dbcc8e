// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the strings under test are shell-style ${NAME} references, not templates.
import { describe, expect, it } from 'vitest';
import { expandVariables } from './events.js';
import { completeUtf8Length } from './logs.js';

describe('completeUtf8Length', () => {
  it('keeps whole buffers of ASCII and complete characters', () => {
    expect(completeUtf8Length(Buffer.from('plain'))).toBe(5);
    expect(completeUtf8Length(Buffer.from('é€😀'))).toBe(Buffer.byteLength('é€😀'));
    expect(completeUtf8Length(Buffer.alloc(0))).toBe(0);
  });

  it('cuts before a character split at the end (2, 3 and 4 bytes)', () => {
    for (const ch of ['é', '€', '😀']) {
      const whole = Buffer.from(`ab${ch}`);
      for (let missing = 1; missing < Buffer.byteLength(ch); missing++) {
        expect(completeUtf8Length(whole.subarray(0, whole.length - missing))).toBe(2);
      }
    }
  });
});

describe('expandVariables', () => {
  it('replaces $NAME and ${NAME}, leaves unknown names as written', () => {
    const vars = { REGISTRY: 'reg.example', PROJECT: 'ada/app', COMMIT_SHA: 'abc123' };
    expect(expandVariables('$REGISTRY/$PROJECT:${COMMIT_SHA}', vars)).toBe('reg.example/ada/app:abc123');
    expect(expandVariables('$UNKNOWN-${ALSO_UNKNOWN}', vars)).toBe('$UNKNOWN-${ALSO_UNKNOWN}');
    expect(expandVariables('deploy-$COMMIT_SHA', vars)).toBe('deploy-abc123');
  });
});
