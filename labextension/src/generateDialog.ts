/**
 * "Generate project…": ask for a description, a project kind and a target
 * folder, then start a generation run.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { PolarisClient, ProjectKind } from './api';
import { h } from './renderer/dom';

export interface GenerateRequest {
  description: string;
  kind: string;
  path: string;
  overwrite: boolean;
}

class GenerateForm extends Widget implements Dialog.IBodyWidget<GenerateRequest> {
  private description: HTMLTextAreaElement;
  private kind: HTMLSelectElement;
  private path: HTMLInputElement;
  private overwrite: HTMLInputElement;

  constructor(kinds: ProjectKind[], defaultPath: string, note: string) {
    super();
    this.addClass('pj-generate-form');
    this.description = h('textarea', { rows: 4, placeholder: 'A todo app with tags and a dark mode', className: 'pj-input' }) as HTMLTextAreaElement;
    this.kind = h('select', { className: 'pj-select' }, ...kinds.map(k => h('option', { value: k.id }, `${k.title || k.id} (${k.steps?.length ?? 0} steps)`))) as HTMLSelectElement;
    this.path = h('input', { type: 'text', value: defaultPath, className: 'pj-input' }) as HTMLInputElement;
    this.overwrite = h('input', { type: 'checkbox' }) as HTMLInputElement;
    this.node.append(
      h('label', null, 'Describe the project', this.description),
      h('label', null, 'Kind', this.kind),
      h('label', null, 'Folder (relative to the workspace)', this.path),
      h('label', { className: 'pj-checkbox' }, this.overwrite, ' Overwrite existing files'),
      note ? h('div', { className: 'pj-muted' }, note) : ''
    );
  }

  getValue(): GenerateRequest {
    return {
      description: this.description.value.trim(),
      kind: this.kind.value,
      path: this.path.value.trim(),
      overwrite: this.overwrite.checked
    };
  }
}

/** Show the dialog; returns the new run id, or null when cancelled. Throws API errors. */
export async function generateProject(client: PolarisClient): Promise<string | null> {
  let kinds: ProjectKind[] = [];
  let note = '';
  try {
    kinds = (await client.projectKinds()).kinds ?? [];
  } catch (error) {
    note = `Could not load project kinds: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (!kinds.length) {
    kinds = [
      { id: 'react-vite', title: 'React + Vite', steps: [] },
      { id: 'python-package', title: 'Python package', steps: [] }
    ];
  }
  const result = await showDialog({
    title: 'Generate project',
    body: new GenerateForm(kinds, 'app/', note),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Generate' })],
    focusNodeSelector: 'textarea'
  });
  if (!result.button.accept || !result.value) {
    return null;
  }
  const request = result.value;
  if (!request.description) {
    throw new Error('Describe the project to generate.');
  }
  if (!request.path) {
    throw new Error('Choose a folder for the project.');
  }
  const started = await client.generate(request);
  return started.runId;
}
