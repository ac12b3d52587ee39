/**
 * A small, safe markdown renderer.
 *
 * Model text and file contents can carry HTML, so every character of the
 * source is escaped first; only the tags this module emits itself ever reach
 * the DOM. Supported: fenced code, headings, lists, block quotes, tables,
 * rules, paragraphs, inline code, bold, italic, strike-through and links
 * (http, https, mailto and relative only).
 */

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;'
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, ch => ESCAPES[ch]);
}

/** Is this (already escaped) URL one we allow in an href? */
export function isSafeUrl(url: string): boolean {
  const trimmed = url.trim();
  if (/^(https?:|mailto:)/i.test(trimmed)) {
    return true;
  }
  // Relative URLs: no scheme before the first '/', '?' or '#'.
  const head = trimmed.split(/[/?#]/, 1)[0];
  return !head.includes(':') && !trimmed.startsWith('//');
}

const PLACEHOLDER = '\u0000';

/** Render inline markdown of one already-escaped line or paragraph. */
function renderInline(escaped: string): string {
  const stash: string[] = [];
  const keep = (html: string): string => {
    stash.push(html);
    return `${PLACEHOLDER}${stash.length - 1}${PLACEHOLDER}`;
  };
  let text = escaped;
  // Code spans first: their content is never interpreted further.
  text = text.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (_m, _ticks, code: string) =>
    keep(`<code>${code.trim() === '' ? code : code.replace(/^ (.*) $/, '$1')}</code>`)
  );
  // Links [label](url).
  text = text.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (_m, label: string, url: string) =>
    isSafeUrl(url)
      ? keep(`<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`)
      : keep(label)
  );
  // Bare http(s) URLs.
  text = text.replace(/\bhttps?:\/\/[^\s<>\u0000]*[^\s<>\u0000.,;:!?)\]'"&]/g, url =>
    keep(`<a href="${url}" target="_blank" rel="noopener noreferrer">${url}</a>`)
  );
  text = text
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/__(?=\S)([\s\S]*?\S)__/g, '<strong>$1</strong>')
    .replace(/(^|[^*\w])\*(?=\S)([^*]*?\S)\*(?![*\w])/g, '$1<em>$2</em>')
    .replace(/(^|[^_\w])_(?=\S)([^_]*?\S)_(?![_\w])/g, '$1<em>$2</em>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>');
  return text.replace(
    new RegExp(`${PLACEHOLDER}(\\d+)${PLACEHOLDER}`, 'g'),
    (_m, index: string) => stash[Number(index)]
  );
}

interface Block {
  html: string;
}

function isTableSeparator(line: string): boolean {
  return /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(line) && line.includes('-');
}

function splitRow(line: string): string[] {
  let row = line.trim();
  if (row.startsWith('|')) {
    row = row.slice(1);
  }
  if (row.endsWith('|')) {
    row = row.slice(0, -1);
  }
  return row.split('|').map(cell => cell.trim());
}

const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;

/**
 * Render markdown source to an HTML string that contains only tags produced
 * here. An unterminated code fence (common while text streams in) renders as
 * code up to the end.
 */
export function renderMarkdown(source: string): string {
  const lines = source.replace(/\u0000/g, '').replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = /^\s*(```+|~~~+)\s*([\w+#.-]*)/.exec(line);
    if (fence) {
      const marker = fence[1];
      const lang = fence[2];
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(marker)) {
        body.push(lines[i]);
        i++;
      }
      i++; // closing fence (or past the end)
      const cls = lang ? ` class="language-${escapeHtml(lang)}"` : '';
      blocks.push({ html: `<pre><code${cls}>${escapeHtml(body.join('\n'))}</code></pre>` });
      continue;
    }
    if (/^\s*$/.test(line)) {
      i++;
      continue;
    }
    const heading = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      const level = heading[1].length;
      blocks.push({ html: `<h${level}>${renderInline(escapeHtml(heading[2]))}</h${level}>` });
      i++;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      blocks.push({ html: '<hr>' });
      i++;
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      const quoted: string[] = [];
      while (i < lines.length && /^\s{0,3}>/.test(lines[i])) {
        quoted.push(lines[i].replace(/^\s{0,3}>\s?/, ''));
        i++;
      }
      blocks.push({ html: `<blockquote>${renderMarkdown(quoted.join('\n'))}</blockquote>` });
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && isTableSeparator(lines[i + 1])) {
      const header = splitRow(line);
      i += 2;
      const rows: string[][] = [];
      while (i < lines.length && lines[i].includes('|') && lines[i].trim() !== '') {
        rows.push(splitRow(lines[i]));
        i++;
      }
      const cell = (tag: string, text: string): string =>
        `<${tag}>${renderInline(escapeHtml(text))}</${tag}>`;
      const head = `<tr>${header.map(c => cell('th', c)).join('')}</tr>`;
      const bodyRows = rows
        .map(r => `<tr>${header.map((_h, k) => cell('td', r[k] ?? '')).join('')}</tr>`)
        .join('');
      blocks.push({ html: `<table><thead>${head}</thead><tbody>${bodyRows}</tbody></table>` });
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item) {
      const ordered = /\d/.test(item[2]);
      const items: string[] = [];
      let current: string[] = [];
      const flush = (): void => {
        if (current.length) {
          items.push(`<li>${renderMarkdown(current.join('\n')).replace(/^<p>([\s\S]*)<\/p>$/, '$1')}</li>`);
        }
        current = [];
      };
      const indent = item[1].length;
      while (i < lines.length) {
        const m = LIST_ITEM.exec(lines[i]);
        if (m && m[1].length <= indent && /\d/.test(m[2]) === ordered) {
          flush();
          current.push(m[3]);
        } else if (m && m[1].length <= indent) {
          break; // a list of the other kind starts
        } else if (/^\s*$/.test(lines[i])) {
          if (i + 1 < lines.length && (LIST_ITEM.test(lines[i + 1]) || /^\s{2,}\S/.test(lines[i + 1]))) {
            current.push('');
          } else {
            break;
          }
        } else if (/^\s+\S/.test(lines[i]) || m) {
          current.push(lines[i].replace(/^\s{1,4}/, ''));
        } else {
          // Lazy continuation of the item's paragraph.
          current.push(lines[i]);
        }
        i++;
      }
      flush();
      const start = ordered ? parseInt(item[2], 10) : 1;
      const tag = ordered ? 'ol' : 'ul';
      const startAttr = ordered && start !== 1 ? ` start="${start}"` : '';
      blocks.push({ html: `<${tag}${startAttr}>${items.join('')}</${tag}>` });
      continue;
    }
    // Paragraph: until a blank line or the start of another block.
    const para: string[] = [];
    while (
      i < lines.length &&
      !/^\s*$/.test(lines[i]) &&
      !/^\s*(```|~~~)/.test(lines[i]) &&
      !/^\s{0,3}(#{1,6}\s|>)/.test(lines[i]) &&
      !(para.length > 0 && LIST_ITEM.test(lines[i]))
    ) {
      para.push(lines[i]);
      i++;
    }
    const html = para.map(l => renderInline(escapeHtml(l))).join('<br>');
    blocks.push({ html: `<p>${html}</p>` });
  }
  return blocks.map(b => b.html).join('');
}
