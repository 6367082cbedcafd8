// @ts-check
// Lint configuration (flat config): ESLint's recommended rules and typescript-eslint's type-aware
// rules. Formatting is prettier's job (`npm run format`); no stylistic rule is enabled here.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Tests, test helpers shipped as `testing/` entry points, and the compatibility suites. */
const TESTS = ['**/*.spec.ts', 'test/**/*.ts', 'packages/*/src/testing/**/*.ts'];

export default defineConfig(
  globalIgnores(['**/node_modules/', '**/dist/', 'coverage/', '.kafka/', '.data/', '.scratch/', '.prof/']),
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        // One program for every linted file: tsconfig.tests.json includes the packages' sources,
        // their specs, test/, bench/ and examples/, so nothing falls outside a project, and one
        // program is faster on two cores than a project service building one per package.
        project: ['./tsconfig.tests.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // An unawaited promise is an unhandled rejection waiting to happen: await it, `.catch` it, or
      // mark it `void` with a comment saying why nothing waits.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // Ports (Log, stores, Kafka callbacks) are promise-returning interfaces; an implementation that
      // needs no await stays `async` so that a throw becomes a rejection, as callers expect.
      '@typescript-eslint/require-await': 'off',
      // Objects here are closures returned by factories, not classes: an interface method passed
      // on (`handle: routes.getTwin`, kafkajs' `heartbeat`) does not depend on `this`.
      '@typescript-eslint/unbound-method': 'off',
      // A stored error from a callback is passed on as it was caught (`reject(failure.error)`).
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // `let x` assigned after a callback that reads it is declared (the callback may run first).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // `_`-prefixed names are deliberately unused (a destructured field left out of a rest object).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // Tests parse JSON answers and drive SDKs typed `any`; asserting on them with `expect` is the
    // check, so the no-unsafe-* family (120 hits, all in tests) would only add casts.
    files: TESTS,
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // The two JavaScript entry points (the CLI's bin, the projector's worker) and this file.
    files: ['**/*.{js,mjs}'],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly' },
    },
  },
);
