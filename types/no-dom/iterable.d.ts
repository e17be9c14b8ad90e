// The DOM.Iterable half of the stand-in; see index.d.ts.
export {};
