import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/** A response body and the strong ETag that names it. */
export interface WebAsset {
  body: string;
  etag: string;
}

/** What `/` and `/app.js` serve. */
export interface LivePageAssets {
  html: WebAsset;
  script: WebAsset;
  /** The page's Content-Security-Policy: its own script, its one inline style (by hash), WebSockets. */
  contentSecurityPolicy: string;
}

export interface LivePage {
  /** Built on first use and kept: a process that never serves the page never pays for bundling it. */
  assets(): Promise<LivePageAssets>;
}

/** The query parameter the page puts on its script URL, so a new bundle gets a new URL. */
export const SCRIPT_VERSION_PARAM = 'v';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

const hashOf = (text: string, encoding: 'base64' | 'base64url') => createHash('sha256').update(text).digest(encoding);
const assetOf = (body: string): WebAsset => ({ body, etag: `"${hashOf(body, 'base64url')}"` });

let bundling: Promise<WebAsset> | null = null;

/**
 * The page's TypeScript (src/web/main.ts and the client library it imports) bundled for browsers,
 * in memory, once per process. A failed build is not kept, so the next request tries again.
 */
function bundle(): Promise<WebAsset> {
  bundling ??= build({
    entryPoints: [here('./main.ts')],
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    minify: true,
    legalComments: 'none',
    logLevel: 'silent',
  }).then(
    ({ outputFiles: [bundle] }) => {
      if (!bundle) throw new Error('esbuild wrote no bundle for the live page');
      return assetOf(bundle.text);
    },
    (error: unknown) => {
      bundling = null;
      throw error;
    },
  );
  return bundling;
}

const escapeAttribute = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);

/**
 * The live page: index.html with style.css inlined and the bundle's versioned URL. `devToken`
 * (dev only) prefills the token field, as GraphiQL's headers are, so the page signs in on load.
 */
export function createLivePage(options: { devToken?: string } = {}): LivePage {
  let assets: Promise<LivePageAssets> | null = null;
  const render = async (): Promise<LivePageAssets> => {
    const [template, style, script] = await Promise.all([
      readFile(here('./index.html'), 'utf8'),
      readFile(here('./style.css'), 'utf8'),
      bundle(),
    ]);
    const scriptUrl = `/app.js?${SCRIPT_VERSION_PARAM}=${script.etag.slice(1, -1)}`;
    const values: Record<string, string> = { style, script: scriptUrl, token: escapeAttribute(options.devToken ?? '') };
    const html = template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => values[name] ?? '');
    return {
      html: assetOf(html),
      script,
      contentSecurityPolicy: [
        "default-src 'none'",
        "script-src 'self'",
        `style-src 'sha256-${hashOf(style, 'base64')}'`,
        "connect-src 'self' ws: wss:",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
      ].join('; '),
    };
  };
  return {
    assets() {
      assets ??= render().catch((error: unknown) => {
        assets = null;
        throw error;
      });
      return assets;
    },
  };
}
