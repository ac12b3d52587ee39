/**
 * Clickable workspace paths (tool cards' path hints, a generation's file list): the host registers
 * how to open a file (the lab: `docmanager:open`); without one (the notebook widget bundle) a path
 * stays plain text.
 */

let opener: ((path: string) => void) | null = null;

export function setPathOpener(open: ((path: string) => void) | null): void {
  opener = open;
}

/** Make `el` open `path` on click / Enter (no-op without an opener or a path). Returns `el`. */
export function linkPath<T extends HTMLElement>(el: T, path: unknown): T {
  const open = opener;
  if (!open || typeof path !== 'string' || !path || path.startsWith('/') || path.includes('\0')) {
    return el;
  }
  el.classList.add('pj-path-link');
  el.setAttribute('role', 'link');
  el.setAttribute('tabindex', '0');
  el.setAttribute('aria-label', `Open ${path}`);
  el.title = `Open ${path}`;
  const go = (event: Event): void => {
    event.preventDefault(); // inside a <summary>: open the file, do not fold the card
    event.stopPropagation();
    open(path);
  };
  el.addEventListener('click', go);
  el.addEventListener('keydown', event => {
    if ((event as KeyboardEvent).key === 'Enter') {
      go(event);
    }
  });
  return el;
}

/**
 * Revealing a folder in the file browser (a generated project's folder): the host registers how
 * (the lab: `filebrowser:go-to-path`); without one (the notebook widget bundle) no button is shown.
 */
let revealer: ((folder: string) => void) | null = null;

export function setFolderRevealer(reveal: ((folder: string) => void) | null): void {
  revealer = reveal;
}

/** A `Show in file browser` button for a workspace folder, or null (no revealer, no folder). */
export function revealFolderButton(folder: unknown): HTMLButtonElement | null {
  const reveal = revealer;
  const path = typeof folder === 'string' ? folder.replace(/^\.?\/+|\/+$/g, '') : '';
  if (!reveal || typeof folder !== 'string' || folder.startsWith('/') || folder.includes('\0') || path.split('/').includes('..')) {
    return null;
  }
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'pj-button pj-button-secondary pj-reveal-folder';
  button.textContent = 'Show in file browser';
  button.title = `Show ${path || 'the workspace root'} in the file browser`;
  button.addEventListener('click', () => reveal(path));
  return button;
}
