/**
 * A small syntax highlighter: one tokenizer for the C-like, shell, Python and YAML families
 * (comments, strings, numbers, keywords). Tokens become spans, never HTML: the text stays text.
 */
import type { ComponentChildren } from 'preact';

const KEYWORDS = new Set(
  (
    'const let var function return if else for while do switch case break continue new class extends ' +
    'import export from default async await try catch finally throw typeof instanceof interface type enum ' +
    'public private protected static readonly implements void null undefined true false this super yield ' +
    'def lambda pass raise with as elif in is not and or None True False self fn pub mut impl struct use mod ' +
    'package func go defer chan map range select echo then fi esac done local set'
  ).split(' '),
);

type Lang = 'c' | 'hash' | 'plain';

export function languageOf(path: string): Lang {
  const ext = path.split('.').pop()?.toLowerCase() ?? '';
  if (
    [
      'ts',
      'tsx',
      'js',
      'jsx',
      'mjs',
      'cjs',
      'json',
      'go',
      'rs',
      'java',
      'c',
      'h',
      'cpp',
      'cs',
      'css',
      'kt',
      'swift',
    ].includes(ext)
  )
    return 'c';
  if (
    ['py', 'sh', 'bash', 'yaml', 'yml', 'toml', 'rb', 'pl', 'r', 'conf', 'ini'].includes(ext) ||
    path.endsWith('Dockerfile')
  )
    return 'hash';
  return 'plain';
}

const PATTERNS: Record<Exclude<Lang, 'plain'>, RegExp> = {
  c: /(\/\/[^\n]*|\/\*[\s\S]*?\*\/)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)|(\b\d[\d_.xXa-fA-F]*\b)|([A-Za-z_$][\w$]*)/g,
  hash: /(#[^\n]*)|("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(\b\d[\d_.]*\b)|([A-Za-z_][\w-]*)/g,
};

export function highlight(code: string, lang: Lang): ComponentChildren[] {
  if (lang === 'plain') return [code];
  const re = new RegExp(PATTERNS[lang].source, 'g');
  const out: ComponentChildren[] = [];
  let last = 0;
  let key = 0;
  for (let m = re.exec(code); m; m = re.exec(code)) {
    const [text, comment, str, num, word] = m;
    const cls = comment ? 'tk-c' : str ? 'tk-s' : num ? 'tk-n' : word && KEYWORDS.has(word) ? 'tk-k' : null;
    if (!cls) continue;
    if (m.index > last) out.push(code.slice(last, m.index));
    out.push(
      <span key={key++} class={cls}>
        {text}
      </span>,
    );
    last = m.index + text.length;
  }
  if (last < code.length) out.push(code.slice(last));
  return out;
}

export function CodeView({ code, path }: { code: string; path: string }) {
  const lines = code.split('\n');
  if (lines.length > 1 && lines[lines.length - 1] === '') lines.pop();
  const lang = lines.length > 20000 ? 'plain' : languageOf(path);
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard (axe scrollable-region-focusable)
    <section class="code" aria-label={`Content of ${path}`} tabIndex={0}>
      <pre class="gutter" aria-hidden="true">
        {lines.map((_, i) => `${i + 1}\n`).join('')}
      </pre>
      <pre class="src">
        <code>{highlight(lines.join('\n'), lang)}</code>
      </pre>
    </section>
  );
}
