/**
 * Colored unified-diff view for file edits made by tools.
 */

import { h } from './dom';

export interface DiffStats {
  added: number;
  removed: number;
  files: string[];
}

export function diffStats(diff: string): DiffStats {
  const stats: DiffStats = { added: 0, removed: 0, files: [] };
  for (const line of diff.split('\n')) {
    if (line.startsWith('+++ ')) {
      const name = line.slice(4).replace(/^b\//, '').trim();
      if (name !== '/dev/null') {
        stats.files.push(name);
      }
    } else if (line.startsWith('--- ')) {
      continue;
    } else if (line.startsWith('+')) {
      stats.added++;
    } else if (line.startsWith('-')) {
      stats.removed++;
    }
  }
  return stats;
}

function lineClass(line: string): string {
  if (line.startsWith('+++ ') || line.startsWith('--- ') || line.startsWith('diff ') || line.startsWith('index ')) {
    return 'pj-diff-meta';
  }
  if (line.startsWith('@@')) {
    return 'pj-diff-hunk';
  }
  if (line.startsWith('+')) {
    return 'pj-diff-add';
  }
  if (line.startsWith('-')) {
    return 'pj-diff-del';
  }
  return 'pj-diff-ctx';
}

/** Build the diff as DOM (text nodes only, so file contents cannot inject HTML). */
export function renderDiff(diff: string, maxLines = 2000): HTMLElement {
  const lines = diff.replace(/\r\n?/g, '\n').replace(/\n$/, '').split('\n');
  const pre = h('pre', { className: 'pj-diff' });
  for (const line of lines.slice(0, maxLines)) {
    pre.appendChild(h('span', { className: `pj-diff-line ${lineClass(line)}` }, line || ' '));
  }
  if (lines.length > maxLines) {
    pre.appendChild(
      h('span', { className: 'pj-diff-line pj-diff-meta' }, `… ${lines.length - maxLines} more lines not shown`)
    );
  }
  return pre;
}
