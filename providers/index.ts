// The provider registry: the only place that lists providers by name. Providers
// configured per slot are built here from the slot's (validated) configuration.
import type { z } from 'zod';
import { claude } from './claude';
import { claudeSetupToken } from './claude-setup-token';
import { codex } from './codex';
import { oidcDevice } from './oidc-device';
import { ProviderConfigError, UnknownProviderError } from '../common/failures';
import type { Provider, ProviderFactory } from './provider';

const registry: ReadonlyMap<string, Provider | ProviderFactory> = new Map([claude, codex, oidcDevice, claudeSetupToken].map((p) => [p.name, p]));

export const providerNames = (): string[] => [...registry.keys()];

const isFactory = (entry: Provider | ProviderFactory): entry is ProviderFactory => 'forSlot' in entry;

/** `path: message` for each problem, the path as the operator wrote it (`endpoints.token_endpoint`). */
const describeIssues = (issues: readonly z.core.$ZodIssue[]): string[] =>
  issues.map((i) => `${i.path.length > 0 ? i.path.join('.') : '(configuration)'}: ${i.message}`);

/**
 * Checks a slot's provider configuration and returns it normalised (defaults
 * filled in), or undefined for providers that take none. Throws UnknownProviderError
 * or ProviderConfigError, whose message names every bad field.
 */
export function parseProviderConfig(name: string, config: unknown): unknown {
  const entry = registry.get(name);
  if (!entry) throw new UnknownProviderError(name, providerNames());
  if (!isFactory(entry)) {
    if (config === undefined || (typeof config === 'object' && config !== null && Object.keys(config).length === 0)) return undefined;
    const fields = typeof config === 'object' && config !== null ? Object.keys(config).join(', ') : typeof config;
    throw new ProviderConfigError(name, [`${entry.displayName} takes no configuration (got ${fields})`]);
  }
  if (config === undefined) throw new ProviderConfigError(name, ['a configuration is required (see docs/operating.md, oidc-device: issuer or endpoints, clientId, scopes)']);
  const parsed = entry.config.safeParse(config);
  if (!parsed.success) throw new ProviderConfigError(name, describeIssues(parsed.error.issues));
  return parsed.data;
}

/** The provider for a slot; `config` is the slot's provider configuration, checked here. */
export function getProvider(name: string, config?: unknown): Provider {
  const entry = registry.get(name);
  if (!entry) throw new UnknownProviderError(name, providerNames());
  if (!isFactory(entry)) {
    parseProviderConfig(name, config);
    return entry;
  }
  return entry.forSlot(parseProviderConfig(name, config));
}

/** The servers a slot's normalised configuration names (see ProviderFactory.servers); none for fixed providers. */
export function configuredServers(name: string, normalisedConfig: unknown): readonly { readonly field: string; readonly url: string }[] {
  const entry = registry.get(name);
  if (!entry || !isFactory(entry) || !entry.servers) return [];
  return entry.servers(normalisedConfig);
}
