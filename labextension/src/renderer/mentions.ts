/**
 * @-mentions in the chat input (issue 13, item 2): typing `@` opens a small list ("Mention a
 * file") of workspace files matching what follows it, as you type (the server's fuzzy match,
 * GET /files, over the files findFilesByPattern sees), plus `@cell` for the active cell. Enter or
 * a click attaches the choice as a context chip and removes the `@query` text.
 */

import { clear, h } from './dom';
import type { ContextItem } from './contextChips';

/** The `@query` right before the caret: where its `@` is and what follows it (null: none). */
export function mentionAt(text: string, caret: number): { start: number; query: string } | null {
  const match = /(^|\s)@([^\s@]*)$/.exec(text.slice(0, caret));
  return match ? { start: caret - match[2].length - 1, query: match[2] } : null;
}

export interface MentionHost {
  input: HTMLTextAreaElement;
  /** Workspace files matching `query`, best first. */
  files: (query: string) => Promise<string[]>;
  /** The active cell as a context item, if there is one. */
  activeCell: () => ContextItem | null;
  /** Attach the chosen item (a chip). */
  attach: (item: ContextItem) => void;
}

interface Choice {
  label: string;
  item: ContextItem;
}

export class MentionMenu {
  readonly node: HTMLElement;
  private choices: Choice[] = [];
  private active = 0;
  private mention: { start: number; query: string } | null = null;
  private asked = 0;

  constructor(private host: MentionHost) {
    this.node = h('div', { className: 'pj-mentions', role: 'listbox', 'aria-label': 'Mention a file', hidden: true });
    host.input.addEventListener('input', () => this.update());
    host.input.addEventListener('blur', () => setTimeout(() => this.close(), 150)); // after a click on a choice
  }

  get open(): boolean {
    return !this.node.hidden;
  }

  /** Keys while the list is open: arrows move, Enter/Tab choose, Escape closes. True: handled. */
  onKeyDown(event: KeyboardEvent): boolean {
    if (!this.open || !this.choices.length) {
      return false;
    }
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      const step = event.key === 'ArrowDown' ? 1 : -1;
      this.active = (this.active + step + this.choices.length) % this.choices.length;
      this.render();
    } else if ((event.key === 'Enter' && !event.shiftKey) || event.key === 'Tab') {
      this.choose(this.choices[this.active]);
    } else if (event.key === 'Escape') {
      this.close();
    } else {
      return false;
    }
    event.preventDefault();
    return true;
  }

  close(): void {
    this.mention = null;
    this.choices = [];
    this.node.hidden = true;
    clear(this.node);
  }

  private update(): void {
    const input = this.host.input;
    const mention = mentionAt(input.value, input.selectionStart ?? input.value.length);
    if (!mention) {
      this.close();
      return;
    }
    this.mention = mention;
    const asked = ++this.asked;
    const cell = this.host.activeCell();
    const cellChoice: Choice[] = cell && 'cell'.startsWith(mention.query.toLowerCase()) ? [{ label: '@cell', item: cell }] : [];
    void this.host.files(mention.query).then(
      paths => {
        if (asked !== this.asked || !this.mention) {
          return; // a newer keystroke asked again
        }
        const files = paths.map(path => ({ label: path, item: { kind: 'file', path, label: path.split('/').pop() || path } as ContextItem }));
        this.show([...cellChoice, ...files]);
      },
      () => asked === this.asked && this.show(cellChoice)
    );
  }

  private show(choices: Choice[]): void {
    this.choices = choices;
    this.active = 0;
    this.render();
  }

  private render(): void {
    clear(this.node);
    this.node.hidden = this.choices.length === 0;
    this.choices.forEach((choice, index) => {
      const option = h('div', { className: 'pj-mention', role: 'option', 'aria-selected': String(index === this.active), title: choice.label }, choice.label);
      if (index === this.active) {
        option.classList.add('pj-mention-active');
      }
      option.addEventListener('mousedown', event => {
        event.preventDefault(); // keep the focus in the input
        this.choose(choice);
      });
      this.node.appendChild(option);
    });
  }

  private choose(choice: Choice): void {
    const input = this.host.input;
    const mention = this.mention;
    if (mention) {
      const end = mention.start + 1 + mention.query.length;
      input.value = input.value.slice(0, mention.start) + input.value.slice(end);
      input.selectionStart = input.selectionEnd = mention.start;
    }
    this.host.attach(choice.item);
    this.close();
    input.focus();
  }
}
