// Module resolution hook of bin/twinlog-dev.mjs: what `node --conditions=source` does, for a
// process started without that flag.
export async function resolve(specifier, context, nextResolve) {
  return nextResolve(
    specifier,
    context.conditions.includes('source') ? context : { ...context, conditions: [...context.conditions, 'source'] },
  );
}
