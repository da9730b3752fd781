// Lint protects the workflow sandbox (no Node builtins under workflows/) and
// catches floating promises everywhere.
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((m) => `node:${m}`)];

export default tseslint.config(
  { ignores: ['node_modules/', '.temporal/', '.data/', '.cache/', '.real-clis/', 'dist/', 'coverage/', 'test/fixtures/bin/', 'test/fixtures/histories/', 'bench/results/'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['workflows/**/*.ts', 'common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({
            name,
            message: 'Workflow and common code runs in the Temporal sandbox: no Node builtins.',
          })),
          patterns: [
            { group: ['**/activities/**', '**/workers/**', '**/host/**', '**/client/**', '**/cli/**'], message: 'Workflows import activity types only (import type).', allowTypeImports: true },
            { group: ['node-pty', 'pino', '@temporalio/worker', '@temporalio/client'], message: 'Not allowed in the workflow sandbox.' },
          ],
        },
      ],
    },
  },
);
