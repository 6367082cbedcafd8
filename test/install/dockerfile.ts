/**
 * A small reader of `docker/Dockerfile` for the tests that check it without a Docker engine: its
 * stages (`FROM image AS name`) and their instructions, with line continuations joined, comments
 * dropped and the global `ARG` defaults substituted into `FROM`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const DOCKERFILE = join(import.meta.dirname, '..', '..', 'docker', 'Dockerfile');

export interface Instruction {
  /** Upper case: `RUN`, `COPY`, `ENV`, … */
  readonly keyword: string;
  /** The rest of the line, continuations joined with one space. */
  readonly args: string;
}

export interface Stage {
  readonly name: string | undefined;
  /** The base image, global ARG defaults substituted. */
  readonly from: string;
  readonly instructions: readonly Instruction[];
}

export function parseDockerfile(text: string = readFileSync(DOCKERFILE, 'utf8')): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue; // a comment inside a continued instruction
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push((pending + line).trim());
    pending = '';
  }
  const globalArgs = new Map<string, string>();
  const stages: { name: string | undefined; from: string; instructions: Instruction[] }[] = [];
  for (const l of logical) {
    const space = l.search(/\s/);
    const keyword = (space < 0 ? l : l.slice(0, space)).toUpperCase();
    const args = space < 0 ? '' : l.slice(space + 1).trim();
    if (keyword === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (m === null) throw new Error(`unreadable FROM: ${args}`);
      const from = m[1]!.replace(
        /\$\{(\w+)\}|\$(\w+)/g,
        (_, a: string | undefined, b: string | undefined) => globalArgs.get((a ?? b)!) ?? '',
      );
      stages.push({ name: m[2], from, instructions: [] });
    } else if (stages.length === 0) {
      if (keyword !== 'ARG') throw new Error(`${keyword} before the first FROM`);
      const [k, v = ''] = args.split('=', 2);
      globalArgs.set(k!.trim(), v.trim());
    } else stages.at(-1)!.instructions.push({ keyword, args });
  }
  return stages;
}

/** `ENV a=1 b=2` instructions of a stage, as a map (later ones win). */
export function stageEnv(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const i of stage.instructions.filter((x) => x.keyword === 'ENV')) {
    for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S*)/g)) env.set(m[1]!, m[2]!.replace(/^"|"$/g, ''));
  }
  return env;
}

/** The JSON (exec) form of an `ENTRYPOINT`/`CMD`/`VOLUME`, the last one of the stage. */
export function execForm(stage: Stage, keyword: string): string[] | undefined {
  const last = stage.instructions.filter((x) => x.keyword === keyword).at(-1);
  return last === undefined ? undefined : (JSON.parse(last.args) as string[]);
}
