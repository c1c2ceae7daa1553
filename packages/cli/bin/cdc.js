#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, like the services.
import { register } from 'tsx/esm/api';
register();
await import('../src/cdc.ts');
