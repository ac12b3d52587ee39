/**
 * A small syntax highlighter for the code blocks of replies, shared by the lab and the notebook
 * widget bundle (which has no CodeMirror): one pass of one regular expression per language,
 * tokens drawn as spans coloured by JupyterLab's own editor theme variables
 * (--jp-mirror-editor-*-color, so light and dark themes match the notebook's cells).
 * Text nodes only: code cannot inject HTML.
 */

import { h } from './dom';

type TokenKind = 'comment' | 'string' | 'number' | 'keyword' | 'builtin' | 'meta';

interface Grammar {
  /** Alternation of named groups, one per token kind (group names are TokenKinds). */
  pattern: RegExp;
}

function words(list: string): string {
  return `\\b(?:${list.trim().split(/\s+/).join('|')})\\b`;
}

const PY_KEYWORDS = 'False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case';
const PY_BUILTINS = 'print len range int float str list dict set tuple bool open type isinstance super enumerate zip map filter sorted sum min max abs any all self';
const JS_KEYWORDS = 'break case catch class const continue debugger default delete do else export extends finally for function if import in instanceof let new return super switch this throw try typeof var void while with yield async await of null undefined true false interface type enum implements';
const SH_KEYWORDS = 'if then else elif fi for while do done case esac function in return export local echo cd exit set';
const SQL_KEYWORDS = 'select from where and or not insert into values update set delete create table drop alter join left right inner outer on group by order having limit as distinct union null is in like between case when then else end';

const STRING_DQ = `"(?:[^"\\\\\\n]|\\\\.)*"?`;
const STRING_SQ = `'(?:[^'\\\\\\n]|\\\\.)*'?`;
const NUMBER = `\\b(?:0[xob][0-9a-f_]+|\\d[\\d_]*(?:\\.\\d*)?(?:e[+-]?\\d+)?j?)\\b`;

function grammar(parts: Partial<Record<TokenKind, string>>, flags = 'g'): Grammar {
  const order: TokenKind[] = ['comment', 'string', 'meta', 'number', 'keyword', 'builtin'];
  const source = order.filter(kind => parts[kind]).map(kind => `(?<${kind}>${parts[kind]})`).join('|');
  return { pattern: new RegExp(source, flags) };
}

const PYTHON = grammar({
  comment: '#.*',
  string: `[rbfu]{0,2}(?:"""[\\s\\S]*?(?:"""|$(?![\\s\\S]))|'''[\\s\\S]*?(?:'''|$(?![\\s\\S]))|${STRING_DQ}|${STRING_SQ})`,
  meta: '^\\s*@[\\w.]+|^\\s*[%!].*',
  number: NUMBER,
  keyword: words(PY_KEYWORDS),
  builtin: words(PY_BUILTINS)
}, 'gm');
const JAVASCRIPT = grammar({
  comment: '\\/\\/.*|\\/\\*[\\s\\S]*?(?:\\*\\/|$(?![\\s\\S]))',
  string: `${STRING_DQ}|${STRING_SQ}|\`(?:[^\`\\\\]|\\\\.)*\`?`,
  number: NUMBER,
  keyword: words(JS_KEYWORDS)
}, 'gm');
const SHELL = grammar({ comment: '(?:^|\\s)#.*', string: `${STRING_DQ}|${STRING_SQ}`, meta: '\\$\\{?\\w+\\}?', keyword: words(SH_KEYWORDS) }, 'gm');
const JSON_GRAMMAR = grammar({ string: STRING_DQ, number: '-?' + NUMBER, keyword: words('true false null') }, 'gi');
const SQL = grammar({ comment: '--.*', string: STRING_SQ, number: NUMBER, keyword: words(SQL_KEYWORDS) }, 'gi');

const LANGUAGES: Record<string, Grammar> = {
  python: PYTHON, py: PYTHON, ipython: PYTHON, python3: PYTHON,
  javascript: JAVASCRIPT, js: JAVASCRIPT, typescript: JAVASCRIPT, ts: JAVASCRIPT, tsx: JAVASCRIPT, jsx: JAVASCRIPT,
  bash: SHELL, sh: SHELL, shell: SHELL, zsh: SHELL, console: SHELL,
  json: JSON_GRAMMAR, sql: SQL
};

/** The language of a rendered `<code class="language-x">`; notebooks' default is Python. */
export function codeLanguage(code: Element | null): string {
  const match = /(?:^|\s)language-([\w+-]+)/.exec(code?.className ?? '');
  return match ? match[1].toLowerCase() : 'python';
}

/** Colour the tokens of `code` in place (nothing for a language without a grammar). */
export function highlightCode(code: HTMLElement, language = codeLanguage(code)): void {
  const rules = LANGUAGES[language];
  const text = code.textContent ?? '';
  if (!rules || !text) {
    return;
  }
  const out = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(rules.pattern)) {
    const start = match.index ?? 0;
    if (!match[0]) {
      continue;
    }
    const kind = Object.entries(match.groups ?? {}).find(([, value]) => value !== undefined)?.[0];
    if (!kind) {
      continue;
    }
    if (start > last) {
      out.appendChild(document.createTextNode(text.slice(last, start)));
    }
    out.appendChild(h('span', { className: `pj-tok pj-tok-${kind}` }, match[0]));
    last = start + match[0].length;
  }
  if (last < text.length) {
    out.appendChild(document.createTextNode(text.slice(last)));
  }
  code.textContent = '';
  code.appendChild(out);
  code.classList.add('pj-highlighted');
}
