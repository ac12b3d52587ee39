/**
 * Polaris settings (the sidebar's gear button): enter or replace a provider's API key and base
 * URL, and see the workspace rules the model is told.
 *
 * Keys go to the server only (PUT /keys/{provider}: a 0600 file in the Jupyter data dir or the
 * system keyring) and never come back: the form shows "set" with the last 4 characters, and its
 * key field is always empty. An environment variable set for the server wins over a saved
 * value, and the form says so.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { PolarisClient } from '../api';
import type { components } from '../generated/openapi';
import { errorText } from '../renderer/chatView';
import { clear, h } from '../renderer/dom';
import { providerLabel, Rules } from '../renderer/modelBar';

type Schemas = components['schemas'];
export type KeyStatus = Schemas['KeyStatus'];
export type ProviderKey = Schemas['ProviderKey'];

function keyLine(p: ProviderKey): string {
  const last4 = p.apiKey.last4 ? ` (…${p.apiKey.last4})` : '';
  if (p.apiKey.source === 'env') {
    return `API key: set by ${p.envKey} in the server's environment${last4}${p.stored.apiKey ? '; it wins over the key saved here' : ''}`;
  }
  if (p.apiKey.source === 'stored') {
    return `API key: saved here${last4}`;
  }
  return p.provider === 'local' ? 'API key: none (local servers usually need none)' : 'API key: not set';
}

function urlLine(p: ProviderKey): string {
  const where = { env: `from ${p.envBaseUrl} in the server's environment`, stored: 'saved here', default: 'the default' }[p.baseUrlSource];
  return `Base URL: ${p.baseUrl ?? '—'} (${where})`;
}

/** The form's body: one section per provider, then the rules. */
class SettingsBody extends Widget {
  private providersEl = h('div', { className: 'pj-settings-providers' });
  private rulesEl = h('div', { className: 'pj-settings-rules' });
  private noteEl = h('div', { className: 'pj-muted pj-settings-note' });

  constructor(
    private client: PolarisClient,
    private onChanged: () => void
  ) {
    super();
    this.addClass('pj-settings');
    this.node.append(
      h('h3', { className: 'pj-settings-title' }, 'Model providers'),
      this.noteEl,
      this.providersEl,
      h('h3', { className: 'pj-settings-title' }, 'Rules the model is told'),
      this.rulesEl,
      h('div', { className: 'pj-muted' }, "Costs shown in the chat are estimates from a price table (PolarisConfig.prices); a model without a price shows $—.")
    );
  }

  async load(): Promise<void> {
    try {
      const [keys, rules] = await Promise.all([
        this.client.request<KeyStatus>('GET', 'keys'),
        this.client.request<Rules>('GET', 'rules')
      ]);
      this.renderKeys(keys);
      this.renderRules(rules);
    } catch (error) {
      clear(this.providersEl);
      this.providersEl.appendChild(h('div', { className: 'pj-banner', role: 'alert' }, `Cannot load the settings: ${errorText(error)}`));
    }
  }

  private renderKeys(status: KeyStatus): void {
    const where = status.storage === 'keyring' ? 'the system keyring' : 'a file only the server’s user can read (mode 0600)';
    this.noteEl.textContent =
      `Keys are kept on the server, in ${where}, and never sent back to the browser. ` +
      'An environment variable set for the server wins over a value saved here.' +
      (status.note ? ` ${status.note}` : '');
    clear(this.providersEl);
    for (const p of status.providers) {
      this.providersEl.appendChild(this.providerSection(p));
    }
  }

  private providerSection(p: ProviderKey): HTMLElement {
    const label = providerLabel(p.provider);
    const key = h('input', {
      className: 'pj-input pj-key-input',
      type: 'password',
      autocomplete: 'off',
      spellcheck: 'false',
      'aria-label': `${label} API key`,
      placeholder: p.apiKey.set ? 'Paste a new key to replace it' : 'Paste the API key'
    }) as HTMLInputElement;
    const url = h('input', {
      className: 'pj-input pj-url-input',
      type: 'url',
      spellcheck: 'false',
      'aria-label': `${label} base URL`,
      placeholder: p.baseUrlSource === 'stored' ? '' : (p.baseUrl ?? 'https://…/v1')
    }) as HTMLInputElement;
    url.value = p.stored.baseUrl ?? '';
    const message = h('div', { className: 'pj-settings-message', role: 'status' });
    const save = h('button', { className: 'pj-button pj-button-primary', type: 'button', 'aria-label': `Save ${label}` }, 'Save') as HTMLButtonElement;
    const remove = h('button', { className: 'pj-button pj-button-secondary', type: 'button', 'aria-label': `Remove ${label} key` }, 'Remove saved') as HTMLButtonElement;
    remove.disabled = !p.stored.apiKey && !p.stored.baseUrl;
    const envNote = p.envWins.length
      ? h('div', { className: 'pj-settings-env' }, `${p.envWins.join(' and ')} ${p.envWins.length > 1 ? 'are' : 'is'} set for the server and win${p.envWins.length > 1 ? '' : 's'} over what is saved here.`)
      : null;
    const section = h(
      'section',
      { className: 'pj-settings-provider', 'aria-label': label, 'data-provider': p.provider },
      h('div', { className: 'pj-settings-provider-name' }, label),
      h('div', { className: 'pj-settings-state pj-key-state' }, keyLine(p)),
      h('div', { className: 'pj-settings-state' }, urlLine(p)),
      envNote,
      h('label', { className: 'pj-settings-field' }, h('span', null, 'API key'), key),
      h('label', { className: 'pj-settings-field' }, h('span', null, 'Base URL'), url),
      h('div', { className: 'pj-settings-actions' }, save, remove),
      message
    );

    const run = async (action: () => Promise<KeyStatus>, done: string): Promise<void> => {
      save.disabled = remove.disabled = true;
      message.className = 'pj-settings-message';
      message.textContent = 'Saving…';
      try {
        const status = await action();
        this.renderKeys(status);
        const fresh = this.providersEl.querySelector(`[data-provider="${p.provider}"] .pj-settings-message`);
        if (fresh) {
          fresh.textContent = done;
          fresh.classList.add('pj-settings-ok');
        }
        this.onChanged();
      } catch (error) {
        message.className = 'pj-settings-message pj-settings-error';
        message.textContent = errorText(error);
        save.disabled = false;
        remove.disabled = !p.stored.apiKey && !p.stored.baseUrl;
      }
    };
    save.addEventListener('click', () => {
      const body: Record<string, string | null> = {};
      if (key.value.trim()) {
        body.apiKey = key.value.trim();
      }
      const typedUrl = url.value.trim();
      if (typedUrl !== (p.stored.baseUrl ?? '')) {
        body.baseUrl = typedUrl || null;
      }
      if (!Object.keys(body).length) {
        message.className = 'pj-settings-message pj-settings-error';
        message.textContent = 'Nothing to save: paste a key or change the base URL.';
        return;
      }
      void run(() => this.client.request<KeyStatus>('PUT', `keys/${encodeURIComponent(p.provider)}`, body), `Saved. The next message uses it.`);
    });
    remove.addEventListener('click', () => {
      void run(() => this.client.request<KeyStatus>('DELETE', `keys/${encodeURIComponent(p.provider)}`), 'Removed.');
    });
    for (const input of [key, url]) {
      // Enter saves this provider instead of closing the dialog (its default button).
      input.addEventListener('keydown', event => {
        if (event.key === 'Enter') {
          event.preventDefault();
          event.stopPropagation();
          save.click();
        }
      });
    }
    return section;
  }

  private renderRules(rules: Rules): void {
    clear(this.rulesEl);
    if (!rules.files.length) {
      this.rulesEl.appendChild(
        h('div', { className: 'pj-muted' }, 'None. Add AGENTS.md or .polaris/rules/*.md to the workspace; they are added to the system prompt of every message.')
      );
      return;
    }
    const list = h('ul', { className: 'pj-settings-rule-list' });
    for (const f of rules.files) {
      list.appendChild(h('li', null, h('code', null, f.path), ` — ${f.note ?? `${f.includedChars.toLocaleString()} characters`}`));
    }
    this.rulesEl.append(list, h('div', { className: 'pj-muted' }, `At most ${rules.maxChars.toLocaleString()} characters in all (PolarisConfig.rules_max_chars); they are read again for every message.`));
  }
}

/** Open the settings dialog; `onChanged` runs after a key or URL was saved or removed. */
export async function openSettings(client: PolarisClient, onChanged: () => void): Promise<void> {
  const body = new SettingsBody(client, onChanged);
  const shown = showDialog({ title: 'Polaris settings', body, buttons: [Dialog.okButton({ label: 'Close' })] });
  void body.load();
  await shown;
}
