/**
 * The notebook generation progress widget: an anywidget ESM module over the
 * shared ProgressView. Kernel → JS: {kind: "snapshot", steps, files, done,
 * total, status, runId?}, {kind: "events", events}; JS → kernel: refresh.
 */

import { errorText } from '../renderer/chatView';
import { clear, h } from '../renderer/dom';
import { ProgressView } from '../renderer/progress';
import { PolarisEvent } from '../renderer/types';
import { AnyModel, CommClient, KernelMessage } from './comm';

function render({ model, el }: { model: AnyModel; el: HTMLElement }): () => void {
  el.classList.add('pj-widget', 'pj-progress-widget');
  const error = h('div', { className: 'pj-banner', role: 'alert', hidden: true });
  el.appendChild(error);
  const view = new ProgressView(el);
  const onMessage = (message: KernelMessage): void => {
    if (message.kind === 'snapshot') {
      view.setSnapshot(message as any);
    } else if (message.kind === 'events') {
      view.applyEvents((message.events as PolarisEvent[]) ?? []);
    }
  };
  const comm = new CommClient(model, onMessage);
  comm.request('refresh').then(
    () => {
      error.hidden = true;
    },
    reason => {
      error.textContent = errorText(reason);
      error.hidden = false;
    }
  );
  return () => {
    comm.dispose();
    view.dispose();
    el.classList.remove('pj-widget', 'pj-progress-widget');
    clear(el);
  };
}

export default { render };
