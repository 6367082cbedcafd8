/** Test support for the projector on any `Log`: scenario suite, producer, readers, replay oracle. */
export * from './pipelineHarness.ts';
export * from './runProjectorScenarios.ts';
