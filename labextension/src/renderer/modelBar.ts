/**
 * The chat header's model line, drawn by the sidebar and the notebook panel alike: a Model
 * picker (every configured provider's models from GET /models, grouped by provider; the choice
 * belongs to the open conversation and applies from its next message), the workspace rules the
 * model is told (AGENTS.md, .polaris/rules: a chip whose tooltip lists the files), and the
 * conversation's tokens and estimated cost so far.
 *
 * Framework-free: the host gives a ModelSource (REST in the sidebar, comm requests in the
 * notebook widget) and, for the totals, the ChatView whose messages it counts.
 */

import type { components } from '../generated/openapi';
import { clear, h } from './dom';
import { Conversation, Message } from './types';

type Schemas = components['schemas'];
export type ModelList = Schemas['ModelList'];
export type ProviderModels = Schemas['ProviderModels'];
export type Rules = Schemas['Rules'];

/** Where the bar gets its data: REST (sidebar) or the kernel (notebook panel). */
export interface ModelSource {
  listModels(refresh: boolean): Promise<ModelList>;
  /** PATCH the conversation's provider and model (both null: the server's default). */
  setModel(conversationId: string, provider: string | null, model: string | null): Promise<Conversation>;
  rules(): Promise<Rules>;
}

export interface ModelBarOptions {
  source: ModelSource;
  onError: (text: string) => void;
  /** A choice made while no conversation is open starts one (the host opens it). */
  ensureConversation?: () => Promise<Conversation | null>;
  /** The conversation after its model changed (the host keeps its copy). */
  onChanged?: (conversation: Conversation) => void;
  /** More controls next to the picker (the sidebar's Settings button). */
  extra?: HTMLElement[];
  /** The provider and model the next answer is asked from (the chat's choice, else the default). */
  onEffective?: (provider: string | null, model: string | null) => void;
}

export const PROVIDER_LABELS: Record<string, string> = {
  cerebras: 'Cerebras',
  openai: 'OpenAI',
  openrouter: 'OpenRouter',
  local: 'Local server',
  bundled: 'Bundled model'
};
const SEP = '\u0000';
const REFRESH = '__refresh__';
/** Rules are looked at again at most this often while messages come and go. */
const RULES_RECHECK_MS = 3000;

export function providerLabel(name: string | null | undefined): string {
  return (name && PROVIDER_LABELS[name]) || name || '?';
}

/** "$0.0123" (4 decimals under a cent, else 2); the caller says it is an estimate. */
export function formatCost(usd: number): string {
  if (usd === 0) {
    return '$0';
  }
  return `$${usd < 0.01 ? usd.toFixed(4) : usd.toFixed(2)}`;
}

/** The cost part of an answer's usage: "$0.0012" when the price is known, "—" when not. */
export function costText(usage: Message['usage']): { text: string; title: string } {
  const cost = usage?.costUsd;
  if (typeof cost === 'number' && isFinite(cost)) {
    return { text: formatCost(cost), title: 'Estimated cost, from the price table (PolarisConfig.prices)' };
  }
  return { text: '$—', title: 'No price is known for this model: add it to PolarisConfig.prices to see a cost' };
}

interface Totals {
  prompt: number;
  completion: number;
  cost: number;
  priced: number;
  unpriced: number;
  withoutUsage: number;
}

function totalsOf(messages: Message[]): Totals {
  const t: Totals = { prompt: 0, completion: 0, cost: 0, priced: 0, unpriced: 0, withoutUsage: 0 };
  for (const m of messages) {
    if (m.role !== 'assistant' || m.status !== 'completed') {
      continue;
    }
    const usage = m.usage;
    if (!usage || typeof usage.promptTokens !== 'number') {
      t.withoutUsage += 1;
      continue;
    }
    t.prompt += usage.promptTokens ?? 0;
    t.completion += usage.completionTokens ?? 0;
    if (typeof usage.costUsd === 'number') {
      t.cost += usage.costUsd;
      t.priced += 1;
    } else {
      t.unpriced += 1;
    }
  }
  return t;
}

export class ModelBar {
  readonly node: HTMLElement;
  private select: HTMLSelectElement;
  private rulesEl: HTMLElement;
  private usageEl: HTMLElement;
  private list: ModelList | null = null;
  private conversation: Conversation | null = null;
  private observer: MutationObserver | null = null;
  private countedMessages = -1;
  private rulesAt = 0;
  private loading: Promise<void> | null = null;
  private disposed = false;

  constructor(private options: ModelBarOptions) {
    this.select = h('select', { className: 'pj-select pj-model-picker', 'aria-label': 'Model', title: 'The model this chat is answered with' }) as HTMLSelectElement;
    this.rulesEl = h('span', { className: 'pj-rules-chip', tabindex: 0, role: 'note', 'aria-label': 'Workspace rules' });
    this.usageEl = h('span', { className: 'pj-chat-usage', 'aria-label': 'Tokens and cost of this chat' });
    this.node = h('div', { className: 'pj-model-bar' }, this.select, ...(options.extra ?? []), this.rulesEl, this.usageEl);
    this.select.addEventListener('change', () => void this.choose(this.select.value));
    this.renderOptions();
    this.renderUsage([]);
  }

  /** Show `conversation`'s choice (and recount its usage when messages arrive). */
  setConversation(conversation: Conversation | null): void {
    this.conversation = conversation;
    this.renderOptions();
    void this.refreshRules(true);
  }

  /** Count the messages of `view` (tokens, cost) whenever its message list changes. */
  watch(view: { node: HTMLElement; getMessages(): Message[] }): void {
    this.observer?.disconnect();
    const list = view.node.querySelector('.pj-chat-messages') ?? view.node;
    let queued = false;
    this.observer = new MutationObserver(() => {
      if (queued) {
        return;
      }
      queued = true;
      setTimeout(() => {
        queued = false;
        if (!this.disposed) {
          const messages = view.getMessages();
          this.renderUsage(messages);
          if (messages.length !== this.countedMessages) {
            this.countedMessages = messages.length;
            void this.refreshRules(false);
          }
        }
      }, 50);
    });
    this.observer.observe(list, { childList: true, subtree: true, characterData: true });
    this.renderUsage(view.getMessages());
  }

  /** Load the model lists (the server caches them; `refresh` asks every provider again). */
  refresh(refresh = false): Promise<void> {
    if (this.loading && !refresh) {
      return this.loading;
    }
    this.loading = (async () => {
      try {
        this.list = await this.options.source.listModels(refresh);
      } catch (error) {
        this.options.onError(`Cannot list the models: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        this.loading = null;
      }
      if (!this.disposed) {
        this.renderOptions();
      }
    })();
    return this.loading;
  }

  dispose(): void {
    this.disposed = true;
    this.observer?.disconnect();
    this.observer = null;
  }

  // ---- internals ------------------------------------------------------------

  private async choose(value: string): Promise<void> {
    if (value === REFRESH) {
      this.renderOptions();
      await this.refresh(true);
      return;
    }
    const [provider, model] = value ? value.split(SEP) : [null, null];
    let conversation = this.conversation ?? (await this.options.ensureConversation?.()) ?? null;
    if (!conversation) {
      this.renderOptions();
      return;
    }
    this.select.disabled = true;
    try {
      conversation = await this.options.source.setModel(conversation.id, provider || null, model || null);
      this.conversation = conversation;
      this.options.onChanged?.(conversation);
    } catch (error) {
      this.options.onError(`Cannot use that model: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      this.select.disabled = false;
      this.renderOptions();
    }
  }

  private currentValue(): string {
    const c = this.conversation;
    if (!c?.provider && !c?.model) {
      return '';
    }
    return `${c.provider ?? ''}${SEP}${c.model ?? ''}`;
  }

  private renderOptions(): void {
    const select = this.select;
    clear(select);
    const list = this.list;
    const fallback = list?.default;
    const defaultLabel = fallback?.provider
      ? `Default · ${providerLabel(fallback.provider)} · ${fallback.model ?? 'its default model'}`
      : fallback?.error
        ? 'Default · no model configured'
        : 'Default model';
    select.appendChild(h('option', { value: '' }, defaultLabel));
    const current = this.currentValue();
    let found = current === '';
    const errors: string[] = [];
    for (const p of list?.providers ?? []) {
      const label = providerLabel(p.name);
      const group = h('optgroup', { label: p.error ? `${label} — cannot list models` : label }) as HTMLOptGroupElement;
      const ownDefault = `${p.name}${SEP}`;
      group.appendChild(h('option', { value: ownDefault }, `${label}: its default model${p.defaultModel ? ` (${p.defaultModel})` : ''}`));
      found = found || current === ownDefault;
      for (const m of p.models ?? []) {
        const value = `${p.name}${SEP}${m.id}`;
        found = found || current === value;
        group.appendChild(h('option', { value }, m.id));
      }
      if (p.error) {
        errors.push(`${label}: ${p.error}`);
        group.appendChild(h('option', { value: `${REFRESH}:${p.name}`, disabled: true, title: p.error }, p.error.length > 90 ? `${p.error.slice(0, 89)}…` : p.error));
      }
      if (p.truncated) {
        group.appendChild(h('option', { value: `${REFRESH}:more`, disabled: true }, 'more models not listed'));
      }
      select.appendChild(group);
    }
    if (!found && this.conversation) {
      const c = this.conversation;
      select.appendChild(
        h('optgroup', { label: 'This chat' }, h('option', { value: current }, `${providerLabel(c.provider ?? fallback?.provider)} · ${c.model ?? 'its default model'}`))
      );
    }
    if (!list) {
      select.appendChild(h('option', { value: REFRESH, disabled: true }, 'Loading models…'));
    } else {
      select.appendChild(h('option', { value: REFRESH }, '↻ Refresh the model lists'));
    }
    select.value = current;
    select.title = ['The model this chat is answered with (from its next message)', ...errors].join('\n');
    const c = this.conversation;
    if (c?.provider || c?.model) {
      const own = list?.providers.find(p => p.name === (c.provider ?? fallback?.provider));
      this.options.onEffective?.(c.provider ?? fallback?.provider ?? null, c.model ?? own?.defaultModel ?? null);
    } else if (list) {
      this.options.onEffective?.(fallback?.provider ?? null, fallback?.model ?? null);
    }
  }

  private async refreshRules(force: boolean): Promise<void> {
    const now = Date.now();
    if (!force && now - this.rulesAt < RULES_RECHECK_MS) {
      return;
    }
    this.rulesAt = now;
    try {
      this.renderRules(await this.options.source.rules());
    } catch {
      this.rulesEl.textContent = 'Rules: ?';
      this.rulesEl.title = 'Cannot read the workspace rules right now';
    }
  }

  private renderRules(rules: Rules): void {
    const used = rules.files.filter(f => f.includedChars > 0);
    this.rulesEl.classList.toggle('pj-rules-none', used.length === 0);
    this.rulesEl.classList.toggle('pj-rules-cut', rules.truncated);
    if (!used.length) {
      this.rulesEl.textContent = 'No rules';
      this.rulesEl.title = 'Add AGENTS.md or .polaris/rules/*.md to the workspace to give the model rules for every message.';
      return;
    }
    const first = used[0].path.split('/').pop() ?? used[0].path;
    this.rulesEl.textContent = `Rules: ${first}${used.length > 1 ? ` +${used.length - 1}` : ''}${rules.truncated ? ' (cut)' : ''}`;
    const lines = rules.files.map(f => `• ${f.path}: ${f.note ?? `${f.includedChars.toLocaleString()} characters`}`);
    this.rulesEl.title = [
      'The model is told these workspace rules, read again for every message:',
      ...lines,
      `(at most ${rules.maxChars.toLocaleString()} characters in all)`
    ].join('\n');
  }

  private renderUsage(messages: Message[]): void {
    const t = totalsOf(messages);
    const tokens = t.prompt + t.completion;
    if (!t.priced && !t.unpriced) {
      this.usageEl.textContent = t.withoutUsage ? 'Σ — tokens' : '';
      this.usageEl.title = t.withoutUsage ? 'The model server did not report token usage' : '';
      return;
    }
    const cost = t.priced ? `${formatCost(t.cost)}${t.unpriced ? ' + ?' : ''}` : '$—';
    this.usageEl.textContent = `Σ ${tokens.toLocaleString()} tokens · ${cost}`;
    const notes = [
      `This chat so far: ${t.prompt.toLocaleString()} tokens in, ${t.completion.toLocaleString()} out.`,
      t.priced ? `Estimated cost ${formatCost(t.cost)} (from the price table; providers' prices change).` : 'No price is known for its models.',
      t.unpriced ? `${t.unpriced} answer${t.unpriced > 1 ? 's have' : ' has'} no known price.` : '',
      t.withoutUsage ? `${t.withoutUsage} answer${t.withoutUsage > 1 ? 's' : ''} without token counts.` : ''
    ];
    this.usageEl.title = notes.filter(Boolean).join('\n');
  }
}
