/**
 * The chat header's permission mode: what the conversation's tool calls may do without
 * asking (`ask`, `auto-edit`, `auto`, `plan`; the server's `tools/permissions.py`).
 * Host-agnostic: the sidebar saves the choice with PATCH conversations/{id}, the
 * notebook panel through its comm; both show the conversation's stored mode.
 */

import { h } from './dom';
import { Conversation } from './types';

export type PermissionMode = NonNullable<Conversation['permissionMode']>;

export const PERMISSION_MODES: { mode: PermissionMode; label: string; title: string }[] = [
  { mode: 'ask', label: 'Ask', title: 'Edits and commands wait for your approval; reads never do' },
  { mode: 'auto-edit', label: 'Auto-edit', title: 'Edits apply at once; commands ask' },
  { mode: 'auto', label: 'Auto', title: 'Nothing asks' },
  { mode: 'plan', label: 'Plan', title: 'Read-only: no edit or command tools are offered to the model' }
];

/** The mode a conversation without its own uses (the server's default, PolarisConfig.permission_mode). */
const DEFAULT_MODE: PermissionMode = 'ask';

export class PermissionModeControl {
  readonly node: HTMLSelectElement;
  private current: PermissionMode = DEFAULT_MODE;

  /** `save(mode)` stores the choice; a refusal puts the previous mode back and is passed to `onError`. */
  constructor(
    private save: (mode: PermissionMode) => Promise<unknown>,
    private onError: (error: unknown) => void = () => undefined
  ) {
    this.node = h('select', {
      className: 'pj-select pj-permission-mode',
      'aria-label': 'Permission mode',
      title: 'Permission mode: what tool calls may do without asking'
    }) as HTMLSelectElement;
    for (const entry of PERMISSION_MODES) {
      this.node.appendChild(h('option', { value: entry.mode, title: entry.title }, entry.label));
    }
    this.node.addEventListener('change', () => void this.choose(this.node.value as PermissionMode));
    this.show(null);
  }

  /** Show a conversation's mode (none yet, or no conversation: the default). */
  show(conversation: Pick<Conversation, 'permissionMode'> | null): void {
    this.current = conversation?.permissionMode ?? DEFAULT_MODE;
    this.node.value = this.current;
    this.node.title = `Permission mode: ${PERMISSION_MODES.find(m => m.mode === this.current)?.title ?? this.current}`;
  }

  private async choose(mode: PermissionMode): Promise<void> {
    const previous = this.current;
    this.node.disabled = true;
    try {
      await this.save(mode);
      this.show({ permissionMode: mode });
    } catch (error) {
      this.show({ permissionMode: previous });
      this.onError(error);
    } finally {
      this.node.disabled = false;
    }
  }
}
