import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The Lua scripts the stores load next to their modules (`new URL('./append.lua', import.meta.url)`)
 * are not TypeScript, so tsc leaves them out of dist/: copy them beside the compiled modules.
 */
for (const file of readdirSync('src', { recursive: true, encoding: 'utf8' })) {
  if (file.endsWith('.lua')) cpSync(join('src', file), join('dist', file));
}
