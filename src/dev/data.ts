import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Where `npm run dev` keeps what must survive a restart (the embedded Redis's data, the JWT
 * secret): .data/ in the directory it runs from, the project root for `npm run dev` and `npx herald`.
 */
export const DEV_DATA_DIR = resolve('.data');

/** The JWT secret `npm run dev` signs with; `npx herald token` signs with it too when JWT_SECRET is not set. */
export const DEV_SECRET_FILE = join(DEV_DATA_DIR, 'jwt-secret');

/** The dev JWT secret, generated on first use and kept, so dev tokens survive restarts. */
export function devSecret(): string {
  mkdirSync(DEV_DATA_DIR, { recursive: true });
  if (!existsSync(DEV_SECRET_FILE)) writeFileSync(DEV_SECRET_FILE, randomBytes(32).toString('base64url'), { mode: 0o600 });
  return readDevSecret();
}

function readDevSecret(): string {
  return readFileSync(DEV_SECRET_FILE, 'utf8').trim();
}

/** The dev JWT secret when `npm run dev` has made one here, else nothing: production refuses it. */
export function existingDevSecrets(): string[] {
  return existsSync(DEV_SECRET_FILE) ? [readDevSecret()] : [];
}
