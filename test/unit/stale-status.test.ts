// Reading back the prompt a slot published (SlotPrompt), for a status no worker answered:
// a device flow's user code comes with its URL, and a value the slot could not have
// written (anyone who may start workflows may set search attributes) is not shown.
import { TypedSearchAttributes } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { publishedPromptOf, staleStatus } from '../../client/stale-status';
import { SlotHostKey, SlotPhaseKey, SlotPromptKey, SlotProviderKey } from '../../common/search-attributes';

const attrs = (phase: string, prompt?: string): TypedSearchAttributes =>
  new TypedSearchAttributes([
    { key: SlotPhaseKey, value: phase },
    { key: SlotProviderKey, value: 'codex' },
    { key: SlotHostKey, value: 'h1' },
    ...(prompt !== undefined ? [{ key: SlotPromptKey, value: prompt }] : []),
  ]);

describe('the published prompt in a stale status', () => {
  it('reads a URL alone, and a device URL with its user code', () => {
    expect(publishedPromptOf('https://claude.com/cai/oauth/authorize?code=true&state=abc')).toEqual({ url: 'https://claude.com/cai/oauth/authorize?code=true&state=abc' });
    expect(publishedPromptOf('https://auth.openai.com/codex/device code WDJB-MJHT')).toEqual({ url: 'https://auth.openai.com/codex/device', userCode: 'WDJB-MJHT' });
  });

  it('shows nothing the slot could not have published', () => {
    for (const value of [undefined, '', 'javascript:alert(1)', 'not a url', 'https://x.example/ two words', 'file:///etc/passwd code X']) {
      expect(publishedPromptOf(value), String(value)).toBeUndefined();
    }
  });

  it('gives an awaited operator the URL and code, and says the full prompt needs a fresh answer', () => {
    const status = staleStatus('s1', attrs('awaiting-operator', 'https://auth.openai.com/codex/device code WDJB-MJHT'), 'timed out');
    expect(status).toMatchObject({ slotId: 's1', provider: 'codex', host: 'h1', phase: 'awaiting-operator', publishedPrompt: { url: 'https://auth.openai.com/codex/device', userCode: 'WDJB-MJHT' } });
    expect(status.prompt).toBeUndefined();
    expect(status.stale).toBe(
      'no worker answered (timed out); phase from search attributes, prompt: https://auth.openai.com/codex/device code WDJB-MJHT (as published; ask again for the full prompt, with its deadline and code format)',
    );
  });

  it('keeps a prompt that does not belong to the phase, or is no URL, out of the status and its text', () => {
    const active = staleStatus('s1', attrs('active', 'https://evil.example/phish'), 'no worker polling');
    expect(active.publishedPrompt).toBeUndefined();
    expect(active.stale).toBe('no worker answered (no worker polling); phase from search attributes, and a SlotPrompt that is no login URL of phase active (not shown)');
    const forged = staleStatus('s1', attrs('awaiting-operator', 'javascript:alert(1)'), 'timed out');
    expect(forged.publishedPrompt).toBeUndefined();
    expect(forged.stale).not.toContain('javascript');
    expect(staleStatus('s1', attrs('active'), 'timed out').stale).toBe('no worker answered (timed out); phase from search attributes');
  });
});
