/**
 * The notebook chat panel: an anywidget ESM module over the shared ChatView.
 *
 * Synced traitlets read here: conversation_id, conversations [{id, title}],
 * status_text, busy, context_items (what the kernel offers as context chips:
 * its notebook, the last error, its variables; re-offered after each cell).
 * Streaming arrives as custom messages (see comm.ts). `@` lists workspace
 * files through the `files` action; a Fix's proposal cards use the
 * `proposals` / `apply_proposal` / `discard_proposal` actions.
 */

import { ChatView, errorText, NEW_CHAT_TITLE } from '../renderer/chatView';
import type { ContextItem } from '../renderer/contextChips';
import { clear, h } from '../renderer/dom';
import { ModelBar } from '../renderer/modelBar';
import { PermissionModeControl } from '../renderer/permissionMode';
import { Proposal, ProposalClient, proposalUpdated, setProposalClient } from '../renderer/proposals';
import { Conversation, Message, PolarisEvent } from '../renderer/types';
import { AnyModel, CommClient, KernelMessage } from './comm';

/** The proposal clients of the panels rendered in this page, newest last. */
const livePanels: ProposalClient[] = [];

interface RenderProps {
  model: AnyModel;
  el: HTMLElement;
}

function render({ model, el }: RenderProps): () => void {
  el.classList.add('pj-widget', 'pj-chat-widget');
  const picker = h('select', { className: 'pj-select pj-conversation-picker', 'aria-label': 'Chat' }) as HTMLSelectElement;
  const newButton = h('button', { className: 'pj-button pj-button-secondary pj-new-conversation', type: 'button', title: 'Start a new chat' }, NEW_CHAT_TITLE);
  const statusText = h('span', { className: 'pj-widget-status' });
  let comm: CommClient;
  const mode = new PermissionModeControl(
    next => comm.request('set_mode', { mode: next }),
    error => view.showError(`Cannot change the permission mode: ${errorText(error)}`)
  );
  const toolbar = h('div', null, picker, newButton, mode.node, statusText);
  const host = h('div', { className: 'pj-widget-body' });
  el.append(host);

  const view = new ChatView(host, {
    send: (text, context) => comm.request('send', { text, context: context ?? null }),
    stop: messageId => comm.request('stop', { messageId }),
    retry: messageId => comm.request('retry', { messageId }),
    revert: (runId, force) => comm.request('revert', { runId, force: Boolean(force) }),
    decide: (approvalId, decision, scope) => comm.request('decide', { approvalId, decision, scope }),
    resync: () => {
      void refresh();
    }
  }, {
    toolbar,
    mentionFiles: query => comm.request('files', { query, limit: 20 }).then((r: { paths?: string[] }) => r?.paths ?? [])
  });
  // A Fix's proposal cards (renderer/proposals.ts) through this panel's kernel (the newest
  // panel of the page while it lives; the cards are per page).
  const proposals: ProposalClient = {
    list: runId => comm.request('proposals', { runId }).then((r: { proposals?: Proposal[] }) => r?.proposals ?? []),
    apply: proposalId => comm.request('apply_proposal', { proposalId }),
    discard: proposalId => comm.request('discard_proposal', { proposalId })
  };
  livePanels.push(proposals);
  setProposalClient(proposals);
  // the model picker, rules and usage line (renderer/modelBar.ts) over the kernel's comm
  const models = new ModelBar({
    source: {
      listModels: refresh => comm.request('models', { refresh }),
      setModel: (_conversationId, provider, model) => comm.request('set_model', { provider, model }),
      rules: () => comm.request('rules')
    },
    onError: text => view.showError(text),
    onEffective: (provider, model) => view.setStatus({ provider, model })
  });
  view.node.querySelector('.pj-chat-header')?.after(models.node);
  models.watch(view);

  const onMessage = (message: KernelMessage): void => {
    if (message.kind === 'snapshot') {
      view.setConversation((message.conversation as Conversation | null) ?? null);
      models.setConversation((message.conversation as Conversation | null) ?? null);
      mode.show((message.conversation as Conversation | null) ?? null);
      view.setMessages((message.messages as Message[]) ?? []);
      if (message.status) {
        view.setStatus(message.status);
      }
    } else if (message.kind === 'events') {
      const events = (message.events as PolarisEvent[]) ?? [];
      view.applyEvents(events);
      for (const event of events) {
        const proposal = event.type === 'proposal.updated' ? (event.data?.proposal as Proposal | undefined) : undefined;
        if (proposal?.id) {
          proposalUpdated(proposal); // applied or discarded elsewhere (the sidebar, another panel)
        }
      }
    }
  };
  comm = new CommClient(model, onMessage);

  // The kernel syncs its latest snapshot with the widget state: render it at once, so a busy
  // kernel (Run All, a long cell) that cannot answer "refresh" yet still shows the chat.
  const initial = model.get('snapshot') as Record<string, unknown> | undefined;
  const hasSnapshot = Boolean(initial && 'conversation' in initial);
  if (hasSnapshot) {
    onMessage({ kind: 'snapshot', ...initial } as KernelMessage);
  }
  const refresh = (): Promise<void> =>
    comm.request('refresh').then(
      () => view.showError(null),
      error => {
        // Events keep arriving from the kernel's background loop even while it is busy; a slow
        // refresh is only an error when there is nothing to show.
        if (!hasSnapshot || !String(errorText(error)).includes('did not answer')) {
          view.showError(errorText(error));
        }
      }
    );

  const renderConversations = (): void => {
    const conversations: { id: string; title: string }[] = model.get('conversations') ?? [];
    const current: string = model.get('conversation_id') ?? '';
    clear(picker);
    if (!conversations.some(c => c.id === current)) {
      picker.appendChild(h('option', { value: current }, current ? 'Current chat' : NEW_CHAT_TITLE));
    }
    for (const conversation of conversations) {
      picker.appendChild(h('option', { value: conversation.id }, conversation.title || conversation.id));
    }
    picker.value = current;
  };
  const renderStatus = (): void => {
    statusText.textContent = model.get('status_text') ?? '';
  };
  const renderBusy = (): void => {
    view.setBusy(Boolean(model.get('busy')));
  };
  // The chips above the input: what the kernel offers (the user's removals are kept by the view).
  const renderContext = (): void => {
    const items: ContextItem[] = model.get('context_items') ?? [];
    const notebook = items.find(item => item.kind === 'notebook');
    view.setContext(items.length ? { currentFile: notebook?.path, items } : null);
  };

  picker.addEventListener('change', () => {
    comm.request('select_conversation', { conversationId: picker.value }).catch(error => view.showError(errorText(error)));
  });
  newButton.addEventListener('click', () => {
    comm.request('new_conversation', {}).catch(error => view.showError(errorText(error)));
  });

  const traits: [string, () => void][] = [
    ['change:conversations', renderConversations],
    ['change:conversation_id', renderConversations],
    ['change:status_text', renderStatus],
    ['change:busy', renderBusy],
    ['change:context_items', renderContext]
  ];
  for (const [event, handler] of traits) {
    model.on(event, handler);
  }
  renderConversations();
  renderStatus();
  renderBusy();
  renderContext();
  void refresh();
  comm.request('context').catch(() => undefined); // re-offered as a traitlet change; a busy kernel answers later
  void models.refresh();

  return () => {
    for (const [event, handler] of traits) {
      model.off(event, handler);
    }
    comm.dispose();
    if (livePanels.includes(proposals)) {
      livePanels.splice(livePanels.indexOf(proposals), 1);
    }
    setProposalClient(livePanels[livePanels.length - 1] ?? null);
    models.dispose();
    view.dispose();
    el.classList.remove('pj-widget', 'pj-chat-widget');
    clear(el);
  };
}

export default { render };
