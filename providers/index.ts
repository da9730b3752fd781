// The provider registry: the only place that lists providers by name.
import { claude } from './claude';
import { codex } from './codex';
import type { Provider } from './provider';

const registry: ReadonlyMap<string, Provider> = new Map([claude, codex].map((p) => [p.name, p]));

export const providerNames = (): string[] => [...registry.keys()];

export class UnknownProviderError extends Error {
  override readonly name = 'UnknownProviderError';
  constructor(readonly provider: string) {
    super(`unknown provider "${provider}"; known providers: ${providerNames().join(', ')}`);
  }
}

export function getProvider(name: string): Provider {
  const provider = registry.get(name);
  if (!provider) throw new UnknownProviderError(name);
  return provider;
}
