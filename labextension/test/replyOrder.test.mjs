// Replies read in order (issue 13, item 6): a tool card stands where the model called it, between
// the text before and after; a split never cuts a fenced code block. The renderer runs against a
// linkedom document (bundled in memory with esbuild, as in renderer.test.mjs).
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';
import { parseHTML } from 'linkedom';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
async function load(entry) {
  const bundle = await build({ entryPoints: [resolve(root, entry)], bundle: true, format: 'esm', platform: 'neutral', write: false, logLevel: 'silent' });
  return import(`data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString('base64')}`);
}
const r = { ...(await load('src/renderer/index.ts')), ...(await load('src/renderer/segments.ts')) };
const { document } = parseHTML('<!doctype html><html><body></body></html>');
globalThis.document = document;

function message(content, toolCalls) {
  return { id: 'a1', conversationId: 'c1', role: 'assistant', content, status: 'completed', toolCalls };
}

function call(id, offset) {
  const c = { id, name: 'readFile', arguments: { path: 'notes.txt' }, status: 'succeeded', summary: 'read notes.txt' };
  return offset === undefined ? c : { ...c, offset };
}

/** The body's children in order: text pieces by their text, card groups by their call ids. */
function order(el) {
  const body = el.querySelector('.pj-msg-body');
  return [...body.children].map(child =>
    child.classList.contains('pj-msg-tools')
      ? `card:${[...child.querySelectorAll('.pj-tool')].map(card => card.dataset.toolId).join(',')}`
      : `text:${child.textContent.trim()}`
  );
}

test('the DOM order is text, card, text', () => {
  const before = 'Let me look 🌍 first.';
  const el = document.createElement('div');
  r.renderMessage(el, message(`${before}\n\nIt says **hello**.`, [call('c1', [...before].length)]));
  assert.deepEqual(order(el), ['text:Let me look 🌍 first.', 'card:c1', 'text:It says hello.']);
  assert.equal(el.querySelector('.pj-msg-body strong').textContent, 'hello', 'each piece is rendered as markdown');
  assert.equal(el.querySelectorAll(':scope > .pj-msg-tools').length, 0, 'no cards above the text');
});

test('two calls at two places, and one at the start', () => {
  const el = document.createElement('div');
  r.renderMessage(el, message('One. Two. Three.', [call('c0', 0), call('c1', 4), call('c2', 9)]));
  assert.deepEqual(order(el), ['card:c0', 'text:One.', 'card:c1', 'text:Two.', 'card:c2', 'text:Three.']);
});

test('a call inside a fenced code block moves to after the fence', () => {
  const text = 'Run this:\n```python\nprint(1)\nprint(2)\n```\nThen this.';
  const el = document.createElement('div');
  r.renderMessage(el, message(text, [call('c1', text.indexOf('print(2)'))]));
  assert.deepEqual(order(el), ['text:Run this:print(1)\nprint(2)Copy code', 'card:c1', 'text:Then this.']);
  assert.equal(el.querySelectorAll('.pj-msg-text pre').length, 1, 'the code block is whole');
  assert.equal(el.querySelector('.pj-msg-text pre code').textContent, 'print(1)\nprint(2)');
});

test('calls without an offset stand above the text, as before', () => {
  const el = document.createElement('div');
  r.renderMessage(el, message('All done.', [call('old')]));
  const children = [...el.children].map(child => child.className);
  assert.ok(children.indexOf('pj-msg-tools') < children.indexOf('pj-msg-body pj-markdown'), children.join(' | '));
  assert.deepEqual(order(el), ['text:All done.']);
});

test('segments: an offset past the text (a stream behind its cards) goes to the end', () => {
  const segments = r.replySegments('Hi', [call('c1', 10)]);
  assert.deepEqual(segments.map(s => s.kind), ['text', 'calls']);
});
