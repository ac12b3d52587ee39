/**
 * The extras of one code block of a rendered reply (message.ts draws the block and its
 * `Copy code`): syntax highlighting (highlight.ts) and, where the host registered them, the
 * notebook actions `Insert below`, `Replace cell`, `Run` (codeActions.ts).
 */

import { codeActionButtons } from './codeActions';
import { codeLanguage, highlightCode } from './highlight';

export function decorateCodeBlock(block: HTMLElement, pre: HTMLElement): void {
  const code = pre.querySelector('code');
  const source = code?.textContent ?? pre.textContent ?? '';
  const language = codeLanguage(code);
  if (code) {
    highlightCode(code, language);
  }
  const actions = codeActionButtons(() => source, language);
  if (actions) {
    block.appendChild(actions);
  }
}
