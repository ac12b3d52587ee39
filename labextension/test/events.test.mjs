// The TypeScript reducer (applyMessageEvent / reduceMessage, the one the sidebar, the notebook
// panel and the %polaris ask renderer use) against the shared event-sequence fixtures in
// tests/fixtures/events/, which pytest runs through the Python reducer too. Plus the mime
// payload check of the %polaris ask output. Run with `npm test`.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const fixturesDir = resolve(root, '../tests/fixtures/events');
const bundle = await build({
  entryPoints: [resolve(root, 'src/renderer/index.ts')],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  write: false,
  logLevel: 'silent'
});
const r = await import(`data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString('base64')}`);

const COMPARED = ['runId', 'content', 'status', 'toolCalls', 'error', 'provider', 'model', 'usage'];
/** What JSON would carry: a field the reducer left undefined is null on the wire. */
const wire = message => Object.fromEntries(COMPARED.map(key => [key, message[key] ?? null]));

const fixtures = readdirSync(fixturesDir)
  .filter(name => name.endsWith('.json'))
  .sort()
  .map(name => ({ name, ...JSON.parse(readFileSync(resolve(fixturesDir, name), 'utf8')) }));

test('the shared fixtures are there', () => {
  const names = new Set(fixtures.map(f => f.name));
  for (const name of ['stream_basic', 'delta_unicode_offsets', 'delta_gap', 'retry_resets', 'tool_calls', 'failure']) {
    assert.ok(names.has(`${name}.json`), name);
  }
});

for (const fixture of fixtures) {
  test(`reducer: ${fixture.name} — ${fixture.description}`, () => {
    const initial = structuredClone(fixture.initial);
    const events = structuredClone(fixture.events);
    const { message, gap } = r.reduceMessage(initial, events);
    assert.deepEqual(wire(message), fixture.expected.message);
    assert.equal(gap, fixture.expected.gap);
    // Pure: neither the initial message nor the events were changed.
    assert.deepEqual(initial, fixture.initial);
    assert.deepEqual(events, fixture.events);
  });
}

test('codePointLength and mergeDelta count code points, as the server does', () => {
  assert.equal(r.codePointLength('Hi 😀'), 4);
  assert.equal(r.codePointLength('👍🏽'), 2);
  assert.equal(r.codePointLength('\ud800x'), 2, 'a lone surrogate counts once');
  assert.deepEqual(r.mergeDelta('Hi 😀', 4, ' there'), { content: 'Hi 😀 there', result: 'applied', length: 10 });
  assert.deepEqual(r.mergeDelta('Hi 😀', 3, '😀!'), { content: 'Hi 😀!', result: 'applied', length: 5 });
  assert.equal(r.mergeDelta('Hi 😀', 0, 'Hi 😀').result, 'duplicate');
  assert.equal(r.mergeDelta('Hi 😀', 5, 'x').result, 'gap');
});

test('applyMessageEvent ignores events of other messages and unknown types', () => {
  const message = { id: 'm1', role: 'assistant', content: 'x', status: 'processing', runId: 'r1', toolCalls: [] };
  for (const event of [
    { type: 'message.delta', runId: 'r1', data: { messageId: 'm2', offset: 1, delta: 'y' } },
    { type: 'run.status', runId: 'r1', data: { status: 'COMPLETED', final: true } },
    { type: 'message.created', runId: 'r1', data: { message: { id: 'm2' } } }
  ]) {
    const applied = r.applyMessageEvent(message, event);
    assert.equal(applied.result, 'ignored');
    assert.equal(applied.message, message);
  }
});

test('the final status sets have one home each', () => {
  assert.deepEqual([...r.FINAL_MESSAGE_STATUSES].sort(), ['cancelled', 'completed', 'failed']);
  assert.deepEqual([...r.FINAL_RUN_STATUSES].sort(), ['CANCELED', 'COMPLETED', 'CRASHED', 'EXPIRED', 'FAILED', 'TIMED_OUT']);
  assert.ok(r.isFinalRun('TIMED_OUT') && !r.isFinalRun('REATTEMPTING'));
  assert.ok(r.isFinalMessage('cancelled') && !r.isFinalMessage('processing'));
});

test('parseAnswerPayload: the %polaris ask payload, and clear reasons for bad ones', () => {
  const good = r.parseAnswerPayload({ version: 1, message: { id: 'm1', status: 'completed', content: 'hi', toolCalls: [{ id: 't1' }, 'junk'] } });
  assert.equal(good.message.role, 'assistant');
  assert.deepEqual(good.message.toolCalls, [{ id: 't1' }]);
  assert.equal(good.note, undefined);
  assert.match(r.parseAnswerPayload({ version: 2, message: { id: 'm1', status: 'completed' } }).note, /newer Polaris/);
  assert.equal(r.parseAnswerPayload({ message: { id: 'm1', status: 'pending' } }).message.content, '');
  const bad = [
    [null, /not a JSON object/],
    ['text', /not a JSON object/],
    [{}, /no "message" object/],
    [{ message: { status: 'completed' } }, /no "id" string/],
    [{ message: { id: 'm1' } }, /no "status" string/],
    [{ message: { id: 'm1', status: 'completed', content: 5 } }, /"content" is not a string/],
    [{ message: { id: 'm1', status: 'completed', toolCalls: {} } }, /"toolCalls" is not a list/]
  ];
  for (const [payload, reason] of bad) {
    assert.match(r.parseAnswerPayload(payload).error, reason);
  }
  assert.equal(r.ANSWER_MIME_TYPE, 'application/vnd.polaris.answer+json');
});

test('the Python side writes the same mime type and payload version', () => {
  const python = readFileSync(resolve(root, '../polaris_jupyter/kernel/_answer.py'), 'utf8');
  assert.ok(python.includes(`ANSWER_MIME_TYPE = "${r.ANSWER_MIME_TYPE}"`));
  assert.ok(python.includes(`ANSWER_PAYLOAD_VERSION = ${r.ANSWER_PAYLOAD_VERSION}`));
});
