// ESLint with typescript-eslint's type-aware rules: in a server like Herald a floating or misused promise is a
// lost error or a handler that resolves too late, so those rules are errors. Formatting is Prettier's job.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'node_modules/', 'bin/'] },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // The server project, the browser page (real DOM, no Node) and the Chromium test: see each tsconfig.
        project: ['./tsconfig.json', './src/web/tsconfig.json', './test/tsconfig.browser.json'],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // An async function without await is how our iterators' return() and the answer generators meet their
      // Promise-returning interfaces; the compiler already checks what they return.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // JSON.parse results and expect.any() matchers are `any` by design in tests; the assertions check the shapes.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  { files: ['**/*.js'], extends: [tseslint.configs.disableTypeChecked] },
);
