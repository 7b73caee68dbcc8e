/** ANSI SGR colour codes of a log line → styled runs (everything else in an escape sequence is dropped). */
export interface Run {
  text: string;
  cls: string;
}

const COLOURS = ['k', 'r', 'g', 'y', 'u', 'm', 'c', 'w'];

export function parseAnsi(line: string): Run[] {
  if (!line.includes('\u001b')) return [{ text: line, cls: '' }];
  const runs: Run[] = [];
  let fg = '';
  let bold = false;
  let last = 0;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes are control characters.
  const re = /\u001b\[([\d;]*)([A-Za-z])/g;
  const push = (text: string) => {
    if (text) runs.push({ text, cls: [fg && `a-${fg}`, bold && 'a-b'].filter(Boolean).join(' ') });
  };
  for (let m = re.exec(line); m; m = re.exec(line)) {
    push(line.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[2] !== 'm') continue;
    for (const c of (m[1] || '0').split(';').map(Number)) {
      if (c === 0) {
        fg = '';
        bold = false;
      } else if (c === 1) bold = true;
      else if (c === 22) bold = false;
      else if (c >= 30 && c <= 37) fg = COLOURS[c - 30]!;
      else if (c >= 90 && c <= 97) fg = `${COLOURS[c - 90]!}2`;
      else if (c === 39) fg = '';
    }
  }
  push(line.slice(last));
  return runs;
}
