#!/usr/bin/env node
// `npx herald`: runs the TypeScript CLI from src/ with no build step; tsx (a runtime dependency,
// as for `npm run dev`) compiles each module as Node loads it.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
