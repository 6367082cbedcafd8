/**
 * What the clients of one database file share inside one process: change notification, the
 * in-process consumer groups, and the group leases that keep other processes out of them.
 *
 * - **Notification.** An append through any client of this process wakes the waiters at once; a
 *   commit by another process is seen by polling `PRAGMA data_version` on a control connection
 *   every `pollIntervalMs`, only while someone waits (a subscription or a read past the end).
 * - **Leases.** A group is consumed by one process per file: the first member joining in this
 *   process takes the `group_leases` row, renews it every `leaseMs / 4` and deletes it when the
 *   last member leaves. Another process may take it over when it is stale (no renewal for
 *   `leaseMs`) or when its holder is a dead process on this host (SQLite WAL files are never
 *   shared across hosts, so the pid check is sound); otherwise subscribing rejects with
 *   `LOG_GROUP_BUSY`. A holder that finds its lease taken fails its members with `LOG_GROUP_BUSY`.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { TwinlogError } from '@twinlog/core';
import Database from 'better-sqlite3';
import { Group, Signal } from '@twinlog/core';

/** Process-wide settings of a file, taken from its first client. */
export interface SharedFileOptions {
  readonly pollIntervalMs: number;
  readonly leaseMs: number;
  readonly busyTimeoutMs: number;
}

interface LeaseRow {
  owner: string;
  pid: number;
  host: string;
  heartbeat: number;
}

const HOST = hostname();

/** Whether process `pid` of this host still runs (a zombie, killed but not yet reaped, does not). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // Linux: field 3 of /proc/<pid>/stat is the state; Z is a zombie.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

const files = new Map<string, SharedFile>();

/**
 * The process-wide state of the database at `path` (which must exist), created on first use;
 * pair each call with `release()`.
 */
export function acquireSharedFile(path: string, options: SharedFileOptions): SharedFile {
  const key = realpathSync(path);
  let file = files.get(key);
  if (file === undefined) {
    file = new SharedFile(key, options);
    files.set(key, file);
  }
  file.refs += 1;
  return file;
}

/** The state the clients of one database file share in this process (see the module comment). */
export class SharedFile {
  /** Identifies this process's hold on the file in `group_leases`. */
  readonly token = randomUUID();
  readonly changed = new Signal();
  readonly groups = new Map<string, Group>();
  refs = 0;
  /** Whether a client of this process is running background maintenance on the file (they take turns). */
  maintaining = false;
  private readonly control: Database.Database;
  private watchers = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  private version = -1;
  private readonly heartbeats = new Map<string, NodeJS.Timeout>();
  private readonly unwatchGroups = new Map<string, () => void>();

  constructor(
    readonly key: string,
    private readonly options: SharedFileOptions,
  ) {
    this.control = new Database(key, { fileMustExist: true });
    this.control.pragma(`busy_timeout = ${options.busyTimeoutMs}`);
  }

  /** The group named `name` of this process, created on first use. */
  group(name: string): Group {
    let g = this.groups.get(name);
    if (g === undefined) {
      const group: Group = new Group(name, {
        changed: this.changed,
        acquire: () => {
          this.acquireLease(name);
          this.heartbeats.set(
            name,
            setInterval(() => this.renewLease(name, group), Math.max(10, this.options.leaseMs / 4)).unref(),
          );
          this.unwatchGroups.set(name, this.watch());
        },
        release: () => {
          clearInterval(this.heartbeats.get(name));
          this.heartbeats.delete(name);
          this.unwatchGroups.get(name)?.();
          this.unwatchGroups.delete(name);
          this.releaseLease(name);
        },
      });
      g = group;
      this.groups.set(name, g);
    }
    return g;
  }

  /** Polls for other processes' commits until the returned function is called. */
  watch(): () => void {
    this.watchers += 1;
    if (this.watchers === 1) this.poll();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.watchers -= 1;
      if (this.watchers === 0) {
        clearTimeout(this.pollTimer);
        this.pollTimer = undefined;
      }
    };
  }

  private readonly poll = (): void => {
    try {
      const v = this.control.pragma('data_version', { simple: true }) as number;
      if (v !== this.version) {
        this.version = v;
        this.changed.notify();
      }
    } catch {
      // A closed or busy control connection: try again next time.
    }
    if (this.watchers > 0) this.pollTimer = setTimeout(this.poll, this.options.pollIntervalMs);
  };

  private acquireLease(group: string): void {
    const now = Date.now();
    this.control
      .transaction(() => {
        const row = this.control
          .prepare('SELECT owner, pid, host, heartbeat FROM group_leases WHERE grp = ?')
          .get(group) as LeaseRow | undefined;
        if (row !== undefined && row.owner !== this.token) {
          const stale = now - row.heartbeat > this.options.leaseMs;
          const dead = row.host === HOST && !isAlive(row.pid);
          if (!stale && !dead) {
            throw new TwinlogError(
              'LOG_GROUP_BUSY',
              `group ${group} is consumed by process ${row.pid} on ${row.host}: an embedded log serves each group to one process per database file`,
              { canRetry: true, details: { group, pid: row.pid, host: row.host, path: this.key } },
            );
          }
        }
        this.control
          .prepare(
            `INSERT INTO group_leases (grp, owner, pid, host, heartbeat) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (grp) DO UPDATE SET owner = excluded.owner, pid = excluded.pid, host = excluded.host, heartbeat = excluded.heartbeat`,
          )
          .run(group, this.token, process.pid, HOST, now);
      })
      .immediate();
  }

  private renewLease(name: string, group: Group): void {
    try {
      const { changes } = this.control
        .prepare('UPDATE group_leases SET heartbeat = ? WHERE grp = ? AND owner = ?')
        .run(Date.now(), name, this.token);
      if (changes === 0) {
        group.failAll(
          new TwinlogError(
            'LOG_GROUP_BUSY',
            `group ${name} was taken over by another process (lease not renewed in time)`,
            {
              canRetry: true,
              details: { group: name, path: this.key },
            },
          ),
        );
      }
    } catch {
      // Busy beyond busy_timeout: renew next time.
    }
  }

  private releaseLease(group: string): void {
    try {
      this.control.prepare('DELETE FROM group_leases WHERE grp = ? AND owner = ?').run(group, this.token);
    } catch {
      // Left behind, the row goes stale (or dies with this process) and is taken over.
    }
  }

  /** Drops one reference; the last one closes the control connection. */
  release(): void {
    this.refs -= 1;
    if (this.refs > 0) return;
    files.delete(this.key);
    for (const t of this.heartbeats.values()) clearInterval(t);
    clearTimeout(this.pollTimer);
    this.control.close();
  }
}
