// The floor's activities: nothing but what the engine needs to run them.
let cycles = 0;

export async function noop(): Promise<void> {
  cycles += 1;
}

/** The moment the activity started. */
export async function touch(_code: string): Promise<number> {
  return Date.now();
}

export const cyclesDone = (): number => cycles;
