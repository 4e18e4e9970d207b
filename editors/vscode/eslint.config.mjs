// ESLint (flat config) with type-aware typescript-eslint rules. Why ESLint and not only
// `tsc --strict`: the bugs that matter in an extension are floating promises (an unhandled
// rejection in a command handler fails silently) and misused promises in event handlers,
// which the type checker does not report.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'out/**', 'node_modules/**', '*.vsix'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.mjs'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      eqeqeq: 'error',
      'no-restricted-imports': 'off',
    },
  },
  {
    // The pure modules are unit-tested in plain node: they must never import `vscode`.
    files: ['src/**/*.ts'],
    ignores: ['src/extension.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { paths: [{ name: 'vscode', message: 'Pure modules must not import vscode (tests run in plain node).' }, { name: 'vscode-languageclient/node', message: 'Pure modules must not import the client.' }] }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'off', // node:test's test() returns a promise the runner awaits
    },
  },
  {
    files: ['eslint.config.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
