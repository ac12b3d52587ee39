// The `@query` before the caret that opens the "Mention a file" list (renderer/mentions.ts).
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = await build({ entryPoints: [resolve(root, 'src/renderer/mentions.ts')], bundle: true, format: 'esm', platform: 'neutral', write: false, logLevel: 'silent' });
const m = await import(`data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString('base64')}`);

test('an @ at the start of a word before the caret opens a mention', () => {
  assert.deepEqual(m.mentionAt('What is in @mod', 15), { start: 11, query: 'mod' });
  assert.deepEqual(m.mentionAt('@', 1), { start: 0, query: '' });
  assert.deepEqual(m.mentionAt('see @src/a.py and more', 13), { start: 4, query: 'src/a.py' });
});

test('an e-mail address, a finished word or text after the caret is not a mention', () => {
  assert.equal(m.mentionAt('mail me@example.com', 19), null);
  assert.equal(m.mentionAt('@mod done', 9), null);
  assert.equal(m.mentionAt('plain text', 10), null);
});
