// The config's public API lives in agent/config/ (index.ts); this entry keeps `agent/config.js`
// importable (scripts/bundle-win.mjs loads dist/agent/config.js).
export * from './config/index.js';
