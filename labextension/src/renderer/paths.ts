/**
 * Clickable workspace paths (tool cards' path hints): the host registers how to open a file (the
 * lab: `docmanager:open`); without one (the notebook widget bundle) a path stays plain text.
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
