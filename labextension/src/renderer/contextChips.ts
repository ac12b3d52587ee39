/**
 * Context chips: what will be attached to the next message (above the input, each removable)
 * and what was attached to a sent one (under the user's message, from its stored attachments).
 * The items themselves are gathered by the host (the lab: chat/labContext.ts); the server reads,
 * budgets and sends them to the model (chat/context.py), so a chip is a promise the model gets it.
 */

import { clear, h } from './dom';
import type { components } from '../generated/openapi';

export type ContextItem = components['schemas']['ContextItem'];
export type Attachment = components['schemas']['Attachment'];

const KIND_LABEL: Record<ContextItem['kind'], string> = {
  file: 'File',
  selection: 'Selection',
  cell: 'Cell',
  outputs: 'Outputs',
  notebook: 'Notebook',
  variables: 'Variables'
};

/** A stable identity of an item, so a chip the user removed stays removed while it is offered. */
export function itemKey(item: ContextItem): string {
  return [item.kind, item.path ?? '', item.cellId ?? item.cellIndex ?? '', item.startLine ?? '', item.endLine ?? ''].join('|');
}

/** What a chip says: the host's label, else the kind and the path. */
export function itemLabel(item: Pick<ContextItem, 'kind' | 'label' | 'path'>): string {
  return item.label || [KIND_LABEL[item.kind] ?? item.kind, item.path].filter(Boolean).join(' ');
}

function chip(kind: string, label: string, title: string): HTMLElement {
  return h('span', { className: `pj-chip pj-chip-${kind}`, title, role: 'listitem' }, h('span', { className: 'pj-chip-label' }, label));
}

/** The removable chips of the next message; `items()` is what gets sent. */
export class ContextChips {
  readonly node: HTMLElement;
  private offered: ContextItem[] = [];
  private removed = new Set<string>();
  private added: ContextItem[] = [];

  constructor() {
    this.node = h('div', { className: 'pj-chips pj-context-chips', role: 'list', 'aria-label': 'Attached context', hidden: true });
  }

  /** Replace the offered items (the user's removals of items still offered are kept). */
  offer(items: ContextItem[]): void {
    this.offered = items;
    const keys = new Set(items.map(itemKey));
    for (const key of [...this.removed]) {
      if (!keys.has(key)) {
        this.removed.delete(key);
      }
    }
    this.render();
  }

  /** Attach an item the user chose (an @-mention) to the next message, besides the offered ones. */
  add(item: ContextItem): void {
    const key = itemKey(item);
    this.removed.delete(key);
    if (!this.added.some(a => itemKey(a) === key)) {
      this.added.push(item);
    }
    this.render();
  }

  /** The message was sent: what the user added goes with it (the offered items stay offered). */
  clearAdded(): void {
    this.added = [];
    this.render();
  }

  /** The items the user kept: the offered ones, then the added ones (each once). */
  items(): ContextItem[] {
    const seen = new Set<string>();
    return [...this.offered, ...this.added].filter(item => {
      const key = itemKey(item);
      const keep = !this.removed.has(key) && !seen.has(key);
      seen.add(key);
      return keep;
    });
  }

  private render(): void {
    clear(this.node);
    const kept = this.items();
    this.node.hidden = kept.length === 0;
    for (const item of kept) {
      const label = itemLabel(item);
      const el = chip(item.kind, label, `Sent with your message: ${label}`);
      const remove = h('button', { className: 'pj-chip-remove', type: 'button', 'aria-label': `Remove ${label}`, title: `Do not send ${label}` }, '×');
      remove.addEventListener('click', () => {
        this.added = this.added.filter(a => itemKey(a) !== itemKey(item));
        this.removed.add(itemKey(item));
        this.render();
      });
      el.appendChild(remove);
      this.node.appendChild(el);
    }
  }
}

/** The chips of a sent message: what it carried, and what was cut or left out (with the note). */
export function renderAttachmentChips(attachments: Attachment[] | undefined): HTMLElement | null {
  if (!attachments?.length) {
    return null;
  }
  const list = h('div', { className: 'pj-chips pj-msg-attachments', role: 'list', 'aria-label': 'Attached context' });
  for (const attachment of attachments) {
    const label = itemLabel(attachment);
    const state = attachment.omitted ? ' (not sent)' : attachment.truncated ? ' (cut)' : '';
    const title = [`${label}: ${attachment.tokens} tokens${state}`, attachment.note].filter(Boolean).join(' — ');
    const el = chip(attachment.kind, label + state, title);
    if (attachment.omitted) {
      el.classList.add('pj-chip-omitted');
    }
    list.appendChild(el);
  }
  return list;
}
