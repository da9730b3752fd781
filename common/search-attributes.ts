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
/** The outcome of the slot's last live probe: ok, unauthorized, rate-limited, transient, error or none (common/probe.ts). */
export const SlotLastProbeKey = defineSearchAttributeKey('SlotLastProbe', SearchAttributeType.KEYWORD);
/** When the last live probe was made. */
export const SlotLastProbeAtKey = defineSearchAttributeKey('SlotLastProbeAt', SearchAttributeType.DATETIME);

/** Pools (`pool:<name>`): their name, provider and how many slots could be leased at the last census. */
export const PoolNameKey = defineSearchAttributeKey('PoolName', SearchAttributeType.KEYWORD);
export const PoolProviderKey = defineSearchAttributeKey('PoolProvider', SearchAttributeType.KEYWORD);
export const PoolAvailableKey = defineSearchAttributeKey('PoolAvailable', SearchAttributeType.INT);

/** Every key the project registers with a server (dev server flags, compose set-up, tests). */
export const ALL_SEARCH_ATTRIBUTES = [SlotPhaseKey, SlotProviderKey, SlotHostKey, SlotIdKey, SlotPromptKey, SlotExpiresAtKey, PoolNameKey, PoolProviderKey, PoolAvailableKey, SlotLastProbeKey, SlotLastProbeAtKey] as const;
