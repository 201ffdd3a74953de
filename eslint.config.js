// ESLint: typescript-eslint's recommended rules with type information (no
// floating promises, no unused variables, no `any` leaking into typed code),
// for src and test; plain JavaScript files get the JS recommendations.
// Formatting is Prettier's job (.prettierrc.json), so eslint-config-prettier
// turns off the rules that would disagree with it.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', 'coverage/**', '.tmp/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: {
        // tsconfig.test.json: src and test together (tsconfig.json builds src only).
        project: './tsconfig.test.json',
        tsconfigRootDir: import.meta.dirname,
      },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // `_`-prefixed names are deliberately unused (a callback's position, a destructured rest).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Off: the sanitisers (audit rendering, stderr lines, the inspector and its
      // tests) match control characters on purpose; that is what they are for.
      'no-control-regex': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  prettier,
  {
    // Prettier keeps code within printWidth (120, .prettierrc.json) but never
    // breaks a string, a regular expression or a comment: this catches long
    // comments. User-facing messages stay whole on one line (searchable).
    rules: {
      'max-len': [
        'error',
        { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true },
      ],
    },
  },
);
