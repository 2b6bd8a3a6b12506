// The linter (npm run lint; npm test runs it after the layer rules): ESLint's recommended rules
// and typescript-eslint's strictTypeChecked, with the types of tsconfig.json. A rule is turned off
// or relaxed here only where it is wrong for the whole codebase, with the reason beside it.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  // what is linted: these folders (never models/ with its venv, nor generated output)
  globalIgnores(['*', '!src/', '!test/', '!bench/', '!scripts/', '!bin/']),
  js.configs.recommended,
  tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // `(x) => callback(x)` is how this code passes callbacks; a void value used as a value is still reported
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // node:test's test() and describe() return promises the runner itself awaits
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }] },
      ],
      // `const { dropped: _, ...rest } = o` is how a field is left out of a copy
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      // `async` keeps a promise-returning contract (kafkajs' eachMessage, Command.run) where a body has nothing to wait for
      '@typescript-eslint/require-await': 'off',
      // figures in messages and tables are numbers; String() around each would say nothing more
      '@typescript-eslint/restrict-template-expressions': [
        'error',
        { allowAny: false, allowBoolean: false, allowNever: false, allowNullish: false, allowNumber: true, allowRegExp: false },
      ],
      // kafkajs may restart a consumer on its own after its owner stopped it: createConsumer (src/kafka/kafka-client.ts) makes them all
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.property.name='consumer']", message: 'make consumers with createConsumer (src/kafka/kafka-client.ts), which stay stopped once stopped' },
      ],
    },
  },
  {
    files: ['src/kafka/kafka-client.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
  {
    // the web view's browser scripts: plain JavaScript served as it is, outside tsconfig.json
    files: ['src/view/static/**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      sourceType: 'script',
      globals: { window: 'readonly', document: 'readonly', location: 'readonly', fetch: 'readonly', URL: 'readonly', EventSource: 'readonly', Node: 'readonly', URLSearchParams: 'readonly', history: 'readonly' },
    },
  },
  {
    // bin/mmad.mjs and scripts/test.mjs: plain JavaScript outside tsconfig.json, no types to check them with
    files: ['**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { console: 'readonly', process: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
  },
);
