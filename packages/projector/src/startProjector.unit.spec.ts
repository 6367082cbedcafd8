import { createInMemoryLog } from '@twinlog/core/testing';
import { runProjectorScenarios } from './testing/index.ts';

// The in-memory log with the wall clock, so the fold's stamp-skew checks see real append times.
runProjectorScenarios('the in-memory log', async () => ({ log: createInMemoryLog({ now: () => Date.now() }) }));
