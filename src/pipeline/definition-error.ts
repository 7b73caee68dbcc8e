/**
 * A `.platform.yaml` that cannot be used. `key` is the path of the offending entry relative to the
 * pipeline mapping (`steps[1].commands`; '' for file-level problems), `line` is 1-based when known.
 */
export class DefinitionError extends Error {
  readonly key: string;
  readonly line: number | null;

  constructor(key: string, detail: string, line: number | null) {
    super(`${key ? `${key}: ` : ''}${detail}${line === null ? '' : ` (line ${line})`}`);
    this.name = 'DefinitionError';
    this.key = key;
    this.line = line;
  }
}
