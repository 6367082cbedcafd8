/**
 * CPU time of the Kafka broker's JVM, read from /proc, for benchmarks that share a machine with
 * their broker. The broker is the process that listens on the bootstrap port (matched through
 * /proc/net/tcp{,6} socket inodes and /proc/<pid>/fd); when that cannot be read, the only process
 * whose command line runs `kafka.Kafka`. Nothing is found for a broker on another machine.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export interface BrokerProcess {
  readonly pid: number;
  /** How it was found. */
  readonly how: string;
  /** utime + stime of the process so far, ms. */
  cpuMs(): number | undefined;
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '0.0.0.0', '[::1]']);

let ticksPerSecond: number | undefined;
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of `pid` in ms, undefined when the process is gone. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the command name (which may contain spaces) start at field 3
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / clockTicks();
  } catch {
    return undefined;
  }
}

function kafkaPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').includes('kafka.Kafka')) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** Inodes of the sockets listening on `port` (any address). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const local = cols[1]!;
      const state = cols[3];
      if (state === '0A' && parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(cols[9]!);
    }
  }
  return inodes;
}

function ownsSocket(pid: number, inodes: Set<string>): boolean {
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith('socket:[') && inodes.has(target.slice(8, -1))) return true;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // not ours to read
  }
  return false;
}

/** The local broker process serving `brokers` (first bootstrap address), if it runs on this machine. */
export function findBrokerProcess(brokers: readonly string[]): BrokerProcess | undefined {
  const first = brokers[0] ?? '';
  const colon = first.lastIndexOf(':');
  const host = first.slice(0, colon);
  const port = Number(first.slice(colon + 1));
  const candidates = kafkaPids();
  const make = (pid: number, how: string): BrokerProcess => ({ pid, how, cpuMs: () => processCpuMs(pid) });
  if (LOCAL_HOSTS.has(host) && Number.isInteger(port)) {
    const inodes = listeningInodes(port);
    const owner = inodes.size > 0 ? candidates.find((pid) => ownsSocket(pid, inodes)) : undefined;
    if (owner !== undefined) return make(owner, `pid ${owner}, the kafka.Kafka process listening on port ${port}`);
  }
  if (candidates.length === 1 && LOCAL_HOSTS.has(host))
    return make(candidates[0]!, `pid ${candidates[0]}, the only kafka.Kafka process on this machine`);
  return undefined;
}
