/**
 * The parameters a notebook declares in its cell tagged `parameters` (papermill's convention),
 * read in the browser so the "Run as background job" dialog can prefill them, and the values a
 * user types, read back as JSON for the run-notebook payload.
 *
 * Pure functions (no DOM), unit-tested in test/notebookParams.test.mjs.
 */

/** One assignment of the parameters cell. */
export interface NotebookParameter {
  name: string;
  /** The Python expression as written (`'Paris'`, `[1, 2]`, `date.today()`). */
  expression: string;
  /** Its value as JSON when the expression is a plain literal; undefined otherwise. */
  value?: unknown;
  /** The `# comment` at the end of the line, if any (a hint for the user). */
  comment: string;
}

/** A notebook cell as the contents API returns it (nbformat 4). */
interface CellLike {
  cell_type?: string;
  source?: string | string[];
  metadata?: { tags?: unknown };
}

export const PARAMETERS_TAG = 'parameters';

/** The source of the first cell tagged `parameters`, or null when the notebook has none. */
export function parametersCellSource(notebook: unknown): string | null {
  const cells = (notebook as { cells?: CellLike[] } | null)?.cells;
  if (!Array.isArray(cells)) {
    return null;
  }
  for (const cell of cells) {
    const tags = cell?.metadata?.tags;
    if (Array.isArray(tags) && tags.includes(PARAMETERS_TAG)) {
      return Array.isArray(cell.source) ? cell.source.join('') : String(cell.source ?? '');
    }
  }
  return null;
}

/**
 * The top-level assignments `name = expression  # comment` of a parameters cell, in order (a
 * name assigned twice keeps its last value). Statements spanning lines inside brackets are
 * joined; anything else (imports, calls, indented blocks) is skipped.
 */
export function parseParameters(source: string): NotebookParameter[] {
  const found = new Map<string, NotebookParameter>();
  for (const statement of statements(source)) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]+)?=(?!=)\s*([\s\S]+)$/.exec(statement.code);
    if (!match) {
      continue;
    }
    const expression = match[2].trim();
    const literal = parsePythonLiteral(expression);
    found.delete(match[1]);
    found.set(match[1], { name: match[1], expression, comment: statement.comment, ...(literal.ok ? { value: literal.value } : {}) });
  }
  return [...found.values()];
}

interface Statement {
  code: string;
  comment: string;
}

/** Logical lines (bracket continuation), with the trailing comment split off; indented lines
 * (bodies of blocks) are dropped. */
function statements(source: string): Statement[] {
  const out: Statement[] = [];
  let code = '';
  let comment = '';
  let depth = 0;
  let quote: string | null = null;
  let start = true;
  let skip = false;
  for (let i = 0; i <= source.length; i++) {
    const ch = i < source.length ? source[i] : '\n';
    if (start) {
      start = false;
      skip = depth === 0 && quote === null && (ch === ' ' || ch === '\t');
    }
    if (quote !== null) {
      code += ch;
      if (ch === '\\' && i + 1 < source.length) {
        code += source[++i];
      } else if (source.startsWith(quote, i)) {
        code += quote.slice(1);
        i += quote.length - 1;
        quote = null;
      }
      continue;
    }
    if (ch === '#') {
      const end = source.indexOf('\n', i);
      const stop = end < 0 ? source.length : end;
      if (depth === 0) {
        comment = source.slice(i + 1, stop).trim();
      }
      i = stop - 1;
      continue;
    }
    if (ch === '\n' || ch === ';') {
      if (depth > 0 && ch === '\n') {
        code += ' ';
        continue;
      }
      if (!skip && code.trim()) {
        out.push({ code: code.trim(), comment });
      }
      code = '';
      if (ch === '\n') {
        comment = '';
        start = true;
      }
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = source.startsWith(ch.repeat(3), i) ? ch.repeat(3) : ch;
      code += quote;
      i += quote.length - 1;
      continue;
    }
    if ('([{'.includes(ch)) {
      depth += 1;
    } else if (')]}'.includes(ch)) {
      depth = Math.max(0, depth - 1);
    }
    code += ch;
  }
  return out;
}

export type LiteralResult = { ok: true; value: unknown } | { ok: false };

/**
 * A Python literal as JSON: numbers, strings ('…', "…", no prefixes), True/False/None, and
 * lists, tuples and dicts (string keys) of those. Anything else is `{ok: false}`.
 */
export function parsePythonLiteral(text: string): LiteralResult {
  const parser = new LiteralParser(text);
  try {
    const value = parser.value();
    parser.space();
    return parser.done() ? { ok: true, value } : { ok: false };
  } catch {
    return { ok: false };
  }
}

class LiteralParser {
  private i = 0;
  constructor(private readonly text: string) {}

  done(): boolean {
    return this.i >= this.text.length;
  }

  space(): void {
    while (this.i < this.text.length && /\s/.test(this.text[this.i])) {
      this.i++;
    }
  }

  value(): unknown {
    this.space();
    const ch = this.text[this.i];
    if (ch === '[' || ch === '(') {
      return this.sequence(ch === '[' ? ']' : ')');
    }
    if (ch === '{') {
      return this.dict();
    }
    if (ch === '"' || ch === "'") {
      return this.string();
    }
    const word = /^(True|False|None)\b/.exec(this.text.slice(this.i));
    if (word) {
      this.i += word[1].length;
      return word[1] === 'None' ? null : word[1] === 'True';
    }
    const number = /^[-+]?(\d[\d_]*\.?[\d_]*(e[-+]?\d+)?|\.\d[\d_]*(e[-+]?\d+)?)(?![\w.])/i.exec(this.text.slice(this.i));
    if (number) {
      this.i += number[0].length;
      const parsed = Number(number[0].replace(/_/g, ''));
      if (!Number.isFinite(parsed)) {
        throw new Error('not a finite number');
      }
      return parsed;
    }
    throw new Error(`unexpected ${ch}`);
  }

  private expect(ch: string): boolean {
    this.space();
    if (this.text[this.i] === ch) {
      this.i++;
      return true;
    }
    return false;
  }

  private sequence(close: string): unknown[] {
    this.i++;
    const items: unknown[] = [];
    while (!this.expect(close)) {
      items.push(this.value());
      if (!this.expect(',')) {
        if (!this.expect(close)) {
          throw new Error('expected , or the end of the list');
        }
        break;
      }
    }
    return items;
  }

  private dict(): Record<string, unknown> {
    this.i++;
    const out: Record<string, unknown> = {};
    while (!this.expect('}')) {
      this.space();
      const key = this.value();
      if (typeof key !== 'string' || !this.expect(':')) {
        throw new Error('a JSON object needs string keys');
      }
      out[key] = this.value();
      if (!this.expect(',')) {
        if (!this.expect('}')) {
          throw new Error('expected , or }');
        }
        break;
      }
    }
    return out;
  }

  private string(): string {
    const text = this.text;
    const q = text.startsWith(text[this.i].repeat(3), this.i) ? text[this.i].repeat(3) : text[this.i];
    this.i += q.length;
    let out = '';
    const escapes: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
    while (this.i < text.length) {
      if (text.startsWith(q, this.i)) {
        this.i += q.length;
        return out;
      }
      const ch = text[this.i++];
      if (ch === '\\') {
        const next = text[this.i++];
        if (next === 'u' || next === 'x') {
          const size = next === 'u' ? 4 : 2;
          out += String.fromCharCode(parseInt(text.slice(this.i, this.i + size), 16));
          this.i += size;
        } else if (next === '\n') {
          continue;
        } else {
          out += escapes[next] ?? `\\${next}`;
        }
      } else if (ch === '\n' && q.length === 1) {
        throw new Error('unterminated string');
      } else {
        out += ch;
      }
    }
    throw new Error('unterminated string');
  }
}

/** The text a parameter's input starts with: its value as JSON, or empty (keep the notebook's). */
export function initialInput(parameter: NotebookParameter): string {
  return 'value' in parameter ? JSON.stringify(parameter.value) : '';
}

/**
 * What a user typed in a value box, as the JSON value to send: JSON first (`3`, `"3"`,
 * `[1, 2]`), then a Python literal (`'Paris'`, `True`, `None`), else the text itself (`Paris`).
 */
export function readInput(text: string): unknown {
  const trimmed = text.trim();
  try {
    return JSON.parse(trimmed);
  } catch {
    const literal = parsePythonLiteral(trimmed);
    return literal.ok ? literal.value : text;
  }
}

const PYTHON_KEYWORDS = new Set(
  ('False None True and as assert async await break class continue def del elif else except finally for from global ' +
    'if import in is lambda nonlocal not or pass raise return try while with yield').split(' ')
);

/** Why `name` cannot be a parameter name, or null when it can. */
export function parameterNameError(name: string): string | null {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
    return `"${name}" is not a valid parameter name (letters, digits and _, not starting with a digit)`;
  }
  if (PYTHON_KEYWORDS.has(name)) {
    return `"${name}" is a Python keyword and cannot be a parameter name`;
  }
  return null;
}

/** What the "Run as background job" form holds: the text of each field, as typed. */
export interface JobFormState {
  /** Value text per parameter of the parameters cell (prefilled with {@link initialInput}). */
  values: Record<string, string>;
  /** Parameters added by hand. */
  extra: Array<{ name: string; value: string }>;
  html: boolean;
  timeoutS: string;
  maxAttempts: string;
  cron: string;
  timezone: string;
  saveFirst: boolean;
}

/** A run-notebook request: the payload and options, and a cron + zone when it is a schedule. */
export interface JobRequest {
  payload: { path: string; parameters?: Record<string, unknown>; outputs: string[]; timeoutS?: number };
  options: { maxAttempts?: number };
  cron: string | null;
  timezone: string;
}

/**
 * The request the form describes; throws an Error whose message says what to fix. Only the
 * parameters the user changed (or added) are sent: the others keep the notebook's defaults.
 */
export function jobRequest(path: string, declared: NotebookParameter[], state: JobFormState): JobRequest {
  const parameters: Record<string, unknown> = {};
  for (const parameter of declared) {
    const text = (state.values[parameter.name] ?? '').trim();
    if (text && text !== initialInput(parameter)) {
      parameters[parameter.name] = readInput(text);
    }
  }
  const names = new Set(declared.map(p => p.name));
  for (const row of state.extra) {
    const name = row.name.trim();
    if (!name && !row.value.trim()) {
      continue;
    }
    const problem = name ? parameterNameError(name) : `Name the parameter whose value is ${JSON.stringify(row.value.trim())}`;
    if (problem) {
      throw new Error(problem);
    }
    if (names.has(name)) {
      throw new Error(`"${name}" is given twice: change it in one place`);
    }
    names.add(name);
    parameters[name] = readInput(row.value);
  }
  const payload: JobRequest['payload'] = { path, outputs: state.html ? ['ipynb', 'html'] : ['ipynb'] };
  if (Object.keys(parameters).length) {
    payload.parameters = parameters;
  }
  const options: JobRequest['options'] = {};
  if (state.timeoutS.trim()) {
    const seconds = Number(state.timeoutS);
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new Error(`The cell timeout must be a positive number of seconds, not "${state.timeoutS.trim()}"`);
    }
    payload.timeoutS = seconds;
  }
  if (state.maxAttempts.trim()) {
    const attempts = Number(state.maxAttempts);
    if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) {
      throw new Error(`Attempts must be a whole number from 1 (no retry) to 100, not "${state.maxAttempts.trim()}"`);
    }
    options.maxAttempts = attempts;
  }
  const cron = state.cron.trim().split(/\s+/).filter(Boolean);
  if (cron.length && cron.length !== 5) {
    throw new Error(`A cron expression has 5 fields (minute hour day month weekday), e.g. "0 6 * * *" for 6:00 every day; got ${cron.length}`);
  }
  return { payload, options, cron: cron.length ? cron.join(' ') : null, timezone: state.timezone.trim() || 'UTC' };
}
