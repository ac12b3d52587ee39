/**
 * The JupyterLab renderer of `%polaris ask` outputs (`application/vnd.polaris.answer+json`):
 * a rendermime factory over the shared renderer (renderer/answer.ts), so an answer in a cell
 * looks like the same answer in the sidebar. Outputs in front ends without this extension
 * fall back to the bundle's text/html (or text/plain).
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { ANSWER_MIME_TYPE, renderAnswer } from './renderer/answer';

/** Ahead of text/html (rank 50), so the rich renderer wins where it is installed. */
const RANK = 20;

/** One cell output; a display update calls renderModel again on the same widget. */
export class AnswerRenderer extends Widget implements IRenderMime.IRenderer {
  private readonly host = document.createElement('div');

  constructor(private readonly mimeType: string) {
    super();
    this.addClass('pj-answer-output');
    this.node.appendChild(this.host);
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    renderAnswer(this.host, model.data[this.mimeType]);
    return Promise.resolve();
  }
}

/** Safe: everything model-written is escaped or sanitized by the renderer (markdown.ts). */
export const answerRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [ANSWER_MIME_TYPE],
  defaultRank: RANK,
  createRenderer: options => new AnswerRenderer(options.mimeType)
};

export const answerMimePlugin: JupyterFrontEndPlugin<void> = {
  id: 'polaris-jupyter:answer-renderer',
  description: 'Renders %polaris ask outputs with the chat renderer.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  activate: (_app: JupyterFrontEnd, registry: IRenderMimeRegistry) => {
    registry.addFactory(answerRendererFactory, RANK);
  }
};
