export * from './errors.ts';
export * from './json.ts';
export * from './stamp.ts';
export * from './hlc.ts';
export * from './event.ts';
