// Unit tests of the renderer's pure parts (markdown sanitizing, delta merging, diffs), run with
// `npm test` (node --test). The TypeScript is bundled in memory with esbuild, so no build step.
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = await build({
  entryPoints: [resolve(root, 'src/renderer/index.ts')],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  write: false,
  logLevel: 'silent'
});
const source = bundle.outputFiles[0].text;
const r = await import(`data:text/javascript;base64,${Buffer.from(source).toString('base64')}`);

test('HTML in model text is escaped, never rendered', () => {
  const html = r.renderMarkdown('<script>alert(1)</script> <img src=x onerror="alert(2)"> <b>hi</b>');
  assert.ok(!/<script|<img|<b>/i.test(html), html);
  assert.ok(html.includes('&lt;script&gt;'));
  assert.ok(html.includes('&lt;img src=x onerror=&quot;alert(2)&quot;&gt;'));
});

test('only http(s), mailto and relative links become anchors', () => {
  const html = r.renderMarkdown(
    '[a](javascript:alert(1)) [b](data:text/html,x) [c](//evil.example) [d](https://ok.example/x?y=1&z=2) [e](docs/x.md) [f](mailto:a@b.c)'
  );
  const hrefs = [...html.matchAll(/href="([^"]*)"/g)].map(m => m[1]);
  assert.deepEqual(hrefs, ['https://ok.example/x?y=1&amp;z=2', 'docs/x.md', 'mailto:a@b.c']);
  assert.ok(!html.includes('javascript:alert') || !html.includes('href="javascript'));
  assert.ok(html.includes('rel="noopener noreferrer"'));
});

test('a quote in a link cannot break out of the attribute', () => {
  const html = r.renderMarkdown('[x](https://a.example/"onmouseover="alert(1))');
  assert.ok(!/onmouseover="/.test(html), html);
});

test('code blocks and spans keep their content literally', () => {
  const html = r.renderMarkdown("```html\n<div class=\"x\">**not bold**</div>\n```\nand `<i>` here");
  assert.ok(html.includes('<pre><code class="language-html">&lt;div class=&quot;x&quot;&gt;**not bold**&lt;/div&gt;</code></pre>'), html);
  assert.ok(html.includes('<code>&lt;i&gt;</code>'));
  assert.ok(!html.includes('<strong>'));
});

test('an unterminated fence (text still streaming) renders as code to the end', () => {
  const html = r.renderMarkdown('Here:\n```python\nprint(1)\nprint(2)');
  assert.ok(html.endsWith('<pre><code class="language-python">print(1)\nprint(2)</code></pre>'), html);
});

test('headings, emphasis, lists, quotes and tables', () => {
  const html = r.renderMarkdown(
    '# Title\n\nSome **bold**, _em_, ~~old~~ and snake_case_name.\n\n- one\n- two\n\n3. three\n4. four\n\n> quoted\n\n| a | b |\n|---|---|\n| 1 | 2 |'
  );
  assert.ok(html.includes('<h1>Title</h1>'));
  assert.ok(html.includes('<strong>bold</strong>') && html.includes('<em>em</em>') && html.includes('<del>old</del>'));
  assert.ok(html.includes('snake_case_name'), 'underscores inside words are not emphasis');
  assert.ok(html.includes('<ul><li>one</li><li>two</li></ul>'), html);
  assert.ok(html.includes('<ol start="3"><li>three</li><li>four</li></ol>'), html);
  assert.ok(html.includes('<blockquote><p>quoted</p></blockquote>'));
  assert.ok(html.includes('<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody></table>'));
});

test('mergeDelta appends, ignores duplicates, keeps overlaps once and detects gaps', () => {
  assert.deepEqual(r.mergeDelta('Hel', 3, 'lo'), { content: 'Hello', result: 'applied', length: 5 });
  assert.deepEqual(r.mergeDelta('Hello', 0, 'Hello'), { content: 'Hello', result: 'duplicate', length: 5 });
  assert.deepEqual(r.mergeDelta('Hello', 2, 'llo'), { content: 'Hello', result: 'duplicate', length: 5 });
  assert.deepEqual(r.mergeDelta('Hello', 4, 'o world'), { content: 'Hello world', result: 'applied', length: 11 });
  assert.deepEqual(r.mergeDelta('Hello', 9, 'x'), { content: 'Hello', result: 'gap', length: 5 });
  assert.deepEqual(r.mergeDelta('Hello', -1, 'x'), { content: 'Hello', result: 'gap', length: 5 });
});

const msg = (extra = {}) => ({
  id: 'm1', conversationId: 'c1', role: 'assistant', content: '', status: 'processing', runId: 'run_1', toolCalls: [], ...extra
});

test('mergeMessage: within a run the streamed text and final status win over an older snapshot', () => {
  const streamed = msg({ content: 'Hello world', status: 'completed' });
  const snapshot = msg({ content: 'Hello', status: 'processing' });
  const merged = r.mergeMessage(streamed, snapshot);
  assert.equal(merged.content, 'Hello world');
  assert.equal(merged.status, 'completed');
});

test('mergeMessage: a new run (retry) replaces the message wholesale', () => {
  const old = msg({ content: 'partial answer', status: 'failed', toolCalls: [{ id: 't1', name: 'readFile', arguments: {}, status: 'succeeded' }] });
  const retried = msg({ runId: 'run_2', content: '', status: 'pending', toolCalls: [] });
  const merged = r.mergeMessage(old, retried);
  assert.equal(merged.content, '');
  assert.equal(merged.status, 'pending');
  assert.deepEqual(merged.toolCalls, []);
});

test('upsertToolCall: a late "started" never undoes a "finished"', () => {
  const started = { id: 't1', name: 'writeFile', arguments: { path: 'a.py' }, status: 'running' };
  const finished = { ...started, status: 'succeeded', durationMs: 12 };
  let calls = r.upsertToolCall([], started);
  calls = r.upsertToolCall(calls, finished);
  calls = r.upsertToolCall(calls, started);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].status, 'succeeded');
});

test('diffStats counts added and removed lines and the files', () => {
  const stats = r.diffStats('--- a/x.py\n+++ b/x.py\n@@ -1,2 +1,2 @@\n-a\n+b\n+c\n ctx\n');
  assert.deepEqual(stats, { added: 2, removed: 1, files: ['x.py'] });
});
