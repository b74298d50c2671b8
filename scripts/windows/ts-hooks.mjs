// Module hooks for running the TypeScript sources directly on Node 22's built-in type transform
// (`--experimental-transform-types`), without tsx: the sources import `./x.js` where the file is `./x.ts`.
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && /^\.\.?\//.test(specifier) && specifier.endsWith('.js')) {
      return next(specifier.slice(0, -3) + '.ts', context);
    }
    throw err;
  }
}
