/**
 * What a reply's code block can do besides `Copy code`: `Insert below`, `Replace cell` and `Run`
 * act on the active notebook, so only a host that has one (the lab: chat/labCodeActions.ts)
 * registers them; elsewhere (the notebook widget bundle, `%polaris ask` output shown outside the
 * lab) a block keeps `Copy code` only. Also the line diff `Replace cell` shows first.
 */

import { h } from './dom';

export interface CodeActions {
  /** A new code cell under the active cell of the active notebook. */
  insertBelow(code: string, language: string): Promise<void>;
  /** Show the active cell's change as a diff, then replace its source (the user may cancel). */
  replaceCell(code: string, language: string): Promise<void>;
  /** Insert below and execute it. */
  run(code: string, language: string): Promise<void>;
  /** Say why an action could not be done (no notebook open, …). */
  report(error: unknown): void;
}

let registered: CodeActions | null = null;

/** Register (or with null, remove) the host's notebook actions for code blocks drawn from now on. */
export function setCodeActions(actions: CodeActions | null): void {
  registered = actions;
}

/** The action buttons of one code block; null without registered actions. */
export function codeActionButtons(code: () => string, language: string): HTMLElement | null {
  const actions = registered;
  if (!actions) {
    return null;
  }
  const row = h('div', { className: 'pj-code-actions' });
  const add = (label: string, title: string, act: (code: string, language: string) => Promise<void>): void => {
    const button = h('button', { className: 'pj-button pj-button-secondary pj-code-action', type: 'button', title }, label);
    button.addEventListener('click', () => {
      button.disabled = true;
      act(code(), language)
        .catch(error => actions.report(error))
        .finally(() => {
          button.disabled = false;
        });
    });
    row.appendChild(button);
  };
  add('Insert below', 'Insert this code as a new cell below the active cell', (c, l) => actions.insertBelow(c, l));
  add('Replace cell', 'Replace the active cell with this code (shows the change first)', (c, l) => actions.replaceCell(c, l));
  add('Run', 'Insert this code below the active cell and run it', (c, l) => actions.run(c, l));
  return row;
}

/**
 * A unified-style line diff of `before` → `after` (' ', '-', '+' prefixes; renderer/diff.ts draws
 * it). Longest common subsequence of lines; cells are small, so O(n·m) is fine — above
 * `maxCells` lines² the whole old text is shown removed and the new one added.
 */
export function lineDiff(before: string, after: string, maxCells = 4_000_000): string {
  const a = before.split('\n');
  const b = after.split('\n');
  if (a.length * b.length > maxCells) {
    return [...a.map(l => `-${l}`), ...b.map(l => `+${l}`)].join('\n');
  }
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      out.push(` ${a[i++]}`);
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      out.push(`-${a[i++]}`);
    } else {
      out.push(`+${b[j++]}`);
    }
  }
  while (i < a.length) {
    out.push(`-${a[i++]}`);
  }
  while (j < b.length) {
    out.push(`+${b[j++]}`);
  }
  return out.join('\n');
}
