/**
 * A failure of the command line itself (bad arguments, unreadable config): printed as one line,
 * exit code 2. Engine failures stay `TwinlogError`s and are printed with their `code`, exit code 1.
 */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}
