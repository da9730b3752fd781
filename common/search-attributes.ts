// Search attributes make the Web UI's workflow list a dashboard of slots.
// Node-free (used inside workflows). Values are never secret.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SlotPhaseKey = defineSearchAttributeKey('SlotPhase', SearchAttributeType.KEYWORD);
export const SlotProviderKey = defineSearchAttributeKey('SlotProvider', SearchAttributeType.KEYWORD);
export const SlotHostKey = defineSearchAttributeKey('SlotHost', SearchAttributeType.KEYWORD);
export const SlotIdKey = defineSearchAttributeKey('SlotId', SearchAttributeType.KEYWORD);
/** The URL an operator must open while a login awaits them; empty otherwise. */
export const SlotPromptKey = defineSearchAttributeKey('SlotPrompt', SearchAttributeType.TEXT);
export const SlotExpiresAtKey = defineSearchAttributeKey('SlotExpiresAt', SearchAttributeType.DATETIME);

/** Every key the project registers with a server (dev server flags, compose set-up, tests). */
export const ALL_SEARCH_ATTRIBUTES = [SlotPhaseKey, SlotProviderKey, SlotHostKey, SlotIdKey, SlotPromptKey, SlotExpiresAtKey] as const;
