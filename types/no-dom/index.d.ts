// TypeScript loads `lib: ["dom"]` and `/// <reference lib="dom" />` from @typescript/lib-dom when that package is
// installed (lib replacement). graphql-yoga's types pull in @whatwg-node/fetch, which references the DOM library,
// so without this empty stand-in every DOM global would type-check in server code. Browser code (src/web, the
// client build, the Chromium test) sets `libReplacement: false` in its tsconfig and gets the real DOM library.
export {};
