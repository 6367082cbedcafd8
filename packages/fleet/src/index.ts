/**
 * @twinlog/fleet: the SQLite read model fed by `twin.snapshots` (IoT Hub queries with freshness
 * tokens), jobs that update twins by query, and automatic configurations.
 */
export { createReadModel } from './createReadModel.ts';
export type {
  FreshnessTarget,
  QueryAnswer,
  QueryOptions,
  ReadModel,
  ReadModelOptions,
  ReadModelUpdate,
} from './createReadModel.ts';
export { decodeFreshness, encodeFreshness } from './freshness.ts';
export type { LogPosition, Positions } from './freshness.ts';
export { FLEET_ERROR_CODES, isFleetError } from './fleetError.ts';
export type { FleetErrorCode } from './fleetError.ts';
export { createJobRunner } from './createJobRunner.ts';
export type {
  DeviceJobRow,
  JobRunner,
  JobRunnerOptions,
  JobState,
  JobStatus,
  UpdateTwinJobRequest,
} from './createJobRunner.ts';
export { createConfigurationManager } from './createConfigurationManager.ts';
export type {
  Configuration,
  ConfigurationManager,
  ConfigurationManagerOptions,
  ConfigurationView,
} from './createConfigurationManager.ts';
