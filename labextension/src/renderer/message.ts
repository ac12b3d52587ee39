/**
 * One chat message as every Polaris view draws it: the chat sidebar, the notebook panel and
 * the `%polaris ask` cell output (answerMime.ts) all call renderMessage, so an answer looks
 * the same wherever it is shown.
 */

import { clear, h } from './dom';
import { decorateCodeBlock } from './codeBlock';
import { DecideApproval } from './approvals';
import { renderAttachmentChips } from './contextChips';
import { renderProposals } from './proposals';
import { renderMarkdown } from './markdown';
import { costText } from './modelBar';
import { replySegments } from './segments';
import { renderToolCard } from './toolcard';
import { isActive, isFinalMessage, Message, messageErrorText, MessageStatus, ToolCall } from './types';

const ROLE_LABEL: Record<string, string> = { user: 'You', assistant: 'Polaris', tool: 'Tool' };

const STATUS_LABEL: Record<MessageStatus, string> = {
  pending: 'waiting',
  processing: 'thinking…',
  completed: '',
  failed: 'failed',
  cancelled: 'stopped'
};

/** The badge of a message: "thinking…" until its text starts, "writing…" while it streams ("waiting
 *  for you" while a tool call waits for approval), then none. */
function statusLabel(m: Message): string {
  if (isActive(m) && m.toolCalls?.some(c => c.approval?.status === 'pending')) {
    return 'waiting for you';
  }
  if (m.status === 'processing' && m.content) {
    return 'writing…';
  }
  return STATUS_LABEL[m.status] ?? m.status;
}

/**
 * Tokens of a finished answer as the model server reported them; `null` (not reported, e.g.
 * llama.cpp) is unknown and shown as "—", never as 0.
 */
export function usageText(usage: Message['usage']): { text: string; title: string } {
  const count = (key: string): number | null => {
    const value = usage?.[key];
    return typeof value === 'number' && isFinite(value) ? value : null;
  };
  const prompt = count('promptTokens');
  const completion = count('completionTokens');
  const total = count('totalTokens') ?? (prompt !== null && completion !== null ? prompt + completion : null);
  if (total === null) {
    return { text: '— tokens', title: 'The model server did not report token usage' };
  }
  const parts = [prompt !== null ? `${prompt.toLocaleString()} in` : '', completion !== null ? `${completion.toLocaleString()} out` : ''].filter(Boolean);
  return { text: `${total.toLocaleString()} tokens`, title: parts.length ? `Tokens: ${parts.join(', ')}` : 'Tokens' };
}

export interface MessageRenderOptions {
  /** Retry a failed or stopped answer; without it a hint (`retryHint`) stands in for the button. */
  onRetry?: (messageId: string) => Promise<unknown> | void;
  /** What to tell the user instead of a Retry button, e.g. "Retry with %polaris retry". */
  retryHint?: string;
  /** Undo a run's file edits (the tool cards' "Revert this run"); no button without it. */
  onRevert?: (runId: string, force?: boolean) => void;
  /** The revert state of the message's run (see ToolCardOptions.revertState). */
  revertState?: string;
  /** Approve or deny a tool call held for approval (buttons only while the answer runs). */
  onDecide?: DecideApproval;
}

/** Redraw `el` for `message`. Tool cards keep the sections the user opened or closed. */
export function renderMessage(el: HTMLElement, m: Message, options: MessageRenderOptions = {}): void {
  el.className = `pj-msg pj-msg-${m.role} pj-msg-status-${m.status}`;
  el.dataset.messageId = m.id;

  const meta = h('div', { className: 'pj-msg-meta' }, h('span', { className: 'pj-msg-role' }, ROLE_LABEL[m.role] ?? m.role));
  const badge = statusLabel(m);
  if (badge && m.role === 'assistant') {
    meta.appendChild(h('span', { className: `pj-badge pj-badge-${m.status}` }, badge));
  }
  if (m.role === 'assistant' && m.model && isFinalMessage(m.status)) {
    const model = [m.provider, m.model].filter(Boolean).join(' · ');
    meta.appendChild(h('span', { className: 'pj-msg-model', title: model }, model));
  }
  if (m.role === 'assistant' && m.status === 'completed') {
    const usage = usageText(m.usage);
    meta.appendChild(h('span', { className: 'pj-msg-usage', title: usage.title }, usage.text));
    const cost = costText(m.usage);
    meta.appendChild(h('span', { className: 'pj-msg-cost', title: cost.title }, cost.text));
  }

  const oldCards = new Map<string, HTMLElement>();
  el.querySelectorAll<HTMLElement>('.pj-tool[data-tool-id]').forEach(card => oldCards.set(card.dataset.toolId!, card));

  const cards = (calls: ToolCall[]): HTMLElement => {
    const tools = h('div', { className: 'pj-msg-tools' });
    for (const call of calls) {
      tools.appendChild(
        renderToolCard(
          call,
          { runId: m.runId, onRevert: options.onRevert, revertState: options.revertState, onDecide: isActive(m) ? options.onDecide : undefined },
          oldCards.get(call.id)
        )
      );
    }
    return tools;
  };

  // The reply in reading order: text, the cards of the calls made there, the text after
  // (segments.ts); calls without an offset stand above the text, as before offsets existed.
  const parts: HTMLElement[] = [meta];
  const body = h('div', { className: 'pj-msg-body' });
  const segments = m.role === 'tool' ? [] : replySegments(m.content ?? '', m.toolCalls ?? []);
  const first = segments[0];
  if (first?.kind === 'calls' && typeof first.calls[0].offset !== 'number') {
    parts.push(cards(first.calls)); // replySegments puts the calls without an offset first, alone
    segments.shift();
  }
  if (m.role === 'tool') {
    body.appendChild(h('pre', { className: 'pj-msg-tool-output' }, m.content));
  } else if (m.content || segments.length) {
    body.classList.add('pj-markdown');
    for (const segment of segments) {
      if (segment.kind === 'calls') {
        body.appendChild(cards(segment.calls));
      } else {
        const text = h('div', { className: 'pj-msg-text' });
        text.innerHTML = renderMarkdown(segment.text); // sanitized: see markdown.ts
        addCopyButtons(text);
        body.appendChild(text);
      }
    }
  }
  if (m.role === 'assistant' && isActive(m) && !m.content) {
    body.appendChild(h('span', { className: 'pj-typing', 'aria-label': 'thinking' }, h('span'), h('span'), h('span')));
  }
  parts.push(body);
  const proposals = renderProposals(m);
  if (proposals) {
    parts.push(proposals);
  }
  const attached = m.role === 'user' ? renderAttachmentChips(m.context?.attachments) : null;
  if (attached) {
    parts.push(attached);
  }
  const error = messageErrorText(m.error);
  const detailOpen = Boolean(el.querySelector<HTMLDetailsElement>('details.pj-msg-error-more')?.open);
  if (m.status === 'failed' || m.status === 'cancelled') {
    const note = m.status === 'failed' ? 'Polaris could not finish this answer.' : 'This answer was stopped.';
    const failure = h('div', { className: 'pj-msg-error' }, h('span', null, note));
    if (error.text && !(m.status === 'cancelled' && /cancel/i.test(error.text))) {
      failure.appendChild(h('div', { className: 'pj-msg-error-text' }, error.text));
      appendDetail(failure, error, detailOpen);
    }
    if (m.role === 'assistant' && options.onRetry) {
      const retry = h('button', { className: 'pj-button pj-button-secondary pj-retry', type: 'button' }, 'Retry');
      const onRetry = options.onRetry;
      retry.addEventListener('click', () => {
        retry.disabled = true;
        void onRetry(m.id);
      });
      failure.appendChild(h('div', { className: 'pj-msg-actions' }, retry));
    } else if (m.role === 'assistant' && options.retryHint) {
      failure.appendChild(h('div', { className: 'pj-msg-actions pj-msg-hint' }, options.retryHint));
    }
    parts.push(failure);
  } else if (isActive(m) && error.text) {
    const retrying = h('div', { className: 'pj-msg-retrying' }, h('div', { className: 'pj-msg-error-text' }, `Retrying after an error: ${error.text}`));
    appendDetail(retrying, error, detailOpen);
    parts.push(retrying);
  }
  clear(el);
  el.append(...parts);
}

/**
 * The technical detail of an error (exception, server text, traceback tail), folded and kept open
 * across redraws; nothing when it only repeats the text with the exception's name in front.
 */
function appendDetail(parent: HTMLElement, error: { text: string; detail: string }, open: boolean): void {
  const detail = error.detail.trim();
  const repeatsText = detail.endsWith(error.text) && /^[\w.]*:?\s*$/.test(detail.slice(0, detail.length - error.text.length));
  if (detail && !repeatsText) {
    const more = h('details', { className: 'pj-msg-error-more' }, h('summary', null, 'Details'), h('pre', { className: 'pj-msg-error-detail' }, detail));
    more.open = open;
    parent.appendChild(more);
  }
}

/** A `Copy code` button on every code block of a rendered reply. */
function addCopyButtons(body: HTMLElement): void {
  body.querySelectorAll('pre').forEach(pre => {
    const button = h('button', { className: 'pj-button pj-copy-code', type: 'button', title: 'Copy this code to the clipboard' }, 'Copy code');
    button.addEventListener('click', () => {
      const text = pre.querySelector('code')?.textContent ?? pre.textContent ?? '';
      void copyText(text).then(ok => {
        button.textContent = ok ? 'Copied' : 'Copy failed';
        button.setAttribute('aria-label', 'Copy code');
        setTimeout(() => {
          button.textContent = 'Copy code';
          button.removeAttribute('aria-label');
        }, 1500);
      });
    });
    const block = h('div', { className: 'pj-code-block' }, button);
    pre.replaceWith(block);
    block.prepend(pre);
    decorateCodeBlock(block, pre);
  });
}

/** The clipboard API where the page may use it, else the old selection-copy way. */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard?.writeText) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // not allowed here (insecure origin, no permission): fall through
  }
  const area = h('textarea', { className: 'pj-copy-buffer', readonly: true, 'aria-hidden': 'true' });
  area.value = text;
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.appendChild(area);
  area.select();
  try {
    return document.execCommand('copy');
  } catch {
    return false;
  } finally {
    area.remove();
  }
}
