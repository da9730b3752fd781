import { fileURLToPath } from 'node:url';

/** Recorded workflow histories, committed; see record-histories.test.ts. */
export const HISTORIES_DIR = fileURLToPath(new URL('../fixtures/histories', import.meta.url));
