// The status a client pieces together from a slot's search attributes when no worker
// answered its query in time (all down, or one busy with hundreds of logins). A slot
// awaiting the operator still hands over the URL it published: that is what they act on.
import type { TypedSearchAttributes } from '@temporalio/common';
import { z } from 'zod';
import type { PublishedPrompt, SlotStatus } from '../common/messages';
import { Phase } from '../common/schemas';
import { SlotExpiresAtKey, SlotHostKey, SlotPhaseKey, SlotPromptKey, SlotProviderKey } from '../common/search-attributes';

// What `Slot.publish` (workflows/slot-state.ts) writes: the URL, then ` code <userCode>` for device flows.
const PUBLISHED = /^(\S+)(?: code (\S+))?$/;
const PromptUrl = z.url({ protocol: /^https?$/ });

/** The prompt in a SlotPrompt value, or undefined when it is not one the slot could have published. */
export function publishedPromptOf(value: string | undefined): PublishedPrompt | undefined {
  const parts = value === undefined ? null : PUBLISHED.exec(value.trim());
  if (!parts || !PromptUrl.safeParse(parts[1]).success) return undefined;
  return { url: parts[1] as string, ...(parts[2] ? { userCode: parts[2] } : {}) };
}

/** `why`: what happened to the query ("timed out", "no worker polling"). */
export function staleStatus(slotId: string, attrs: TypedSearchAttributes, why: string): SlotStatus {
  const phase = Phase.safeParse(attrs.get(SlotPhaseKey));
  const published = attrs.get(SlotPromptKey);
  // A prompt belongs to the awaiting phase; with any other, one of the two is not the slot's.
  const prompt = phase.success && phase.data === 'awaiting-operator' ? publishedPromptOf(published) : undefined;
  let promptNote = '';
  if (prompt) promptNote = `, prompt: ${published} (as published; ask again for the full prompt, with its deadline and code format)`;
  else if (published) promptNote = `, and a SlotPrompt that is no login URL of phase ${phase.success ? phase.data : 'unknown'} (not shown)`;
  return {
    slotId,
    provider: attrs.get(SlotProviderKey) ?? 'unknown',
    host: attrs.get(SlotHostKey) ?? 'unknown',
    phase: phase.success ? phase.data : 'logging-in',
    ...(attrs.get(SlotExpiresAtKey) ? { expiresAt: (attrs.get(SlotExpiresAtKey) as Date).getTime() } : {}),
    logins: 0,
    refreshes: 0,
    consecutiveFailures: 0,
    stale: `no worker answered (${why}); phase from search attributes${promptNote}`,
    ...(prompt ? { publishedPrompt: prompt } : {}),
  };
}
