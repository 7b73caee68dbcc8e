/**
 * Branch and tag patterns ("main", "release/*", "v[0-9]*"), matched like the push policy hook's shell
 * `case` patterns so a rule means the same thing everywhere: `*` matches any run of characters
 * (also "/"), `?` one character, `[...]` a class (`[!...]` negated); everything else is literal.
 */
export function globToRegExp(pattern: string): RegExp {
  let out = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end === -1) out += '\\[';
      else {
        let body = pattern.slice(i + 1, end);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        out += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else out += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`${out}$`, 's');
}

export function globMatch(pattern: string, value: string): boolean {
  return globToRegExp(pattern).test(value);
}
