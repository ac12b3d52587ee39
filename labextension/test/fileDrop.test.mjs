// Which dragged file-browser items attach (renderer/fileDrop.ts): files yes, folders no.
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = await build({ entryPoints: [resolve(root, 'src/renderer/fileDrop.ts')], bundle: true, format: 'esm', platform: 'neutral', write: false, logLevel: 'silent' });
const m = await import(`data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString('base64')}`);

/** A lumino MimeData as the file browser fills it: every path, and the model of one item. */
function mimeData(paths, rich) {
  const data = new Map([[m.CONTENTS_MIME, paths]]);
  if (rich) {
    data.set(m.CONTENTS_MIME_RICH, { model: rich, withContent: async () => rich });
  }
  return { hasData: mime => data.has(mime), getData: mime => data.get(mime) };
}

test('dragged files attach; the folder the drag names as one is left out', () => {
  assert.deepEqual(m.draggedPaths(mimeData(['a.py'], { path: 'a.py', type: 'file' })), { files: ['a.py'], folders: [] });
  assert.deepEqual(m.draggedPaths(mimeData(['data'], { path: 'data', type: 'directory' })), { files: [], folders: ['data'] });
  assert.deepEqual(m.draggedPaths(mimeData(['a.py', 'src/b.py', 'data'], { path: 'data', type: 'directory' })), { files: ['a.py', 'src/b.py'], folders: ['data'] });
});

test('a path with a trailing slash is a folder; empty and non-string paths are ignored', () => {
  assert.deepEqual(m.draggedPaths(mimeData(['out/', 'x.txt', '', 3])), { files: ['x.txt'], folders: ['out/'] });
  assert.deepEqual(m.draggedPaths(mimeData('one.md')), { files: ['one.md'], folders: [] });
});
