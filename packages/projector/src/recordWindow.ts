/**
 * The records of a replay's window, held packed (docs/write-path.md, "Replay folds device by
 * device"): keys in one array, topic, offset and timestamp in typed arrays, every value copied into
 * one byte buffer. A window lives while tens of thousands of records are read and folded; held as
 * record objects with a buffer each, it outlived the young collections and was copied and promoted
 * with every one of them. Packed, what the collector sees per record is a key, and the arrays are
 * reused from window to window.
 */
import type { LogRecord } from '@twinlog/core';
import type { InputTopic } from './topics.ts';

/** The headers of a record read back from a window (a fold reads none; one frozen object for all). */
const NO_HEADERS: Readonly<Record<string, string>> = Object.freeze({});

const TOPIC_CODE: Record<InputTopic, number> = { backend: 0, device: 1 };
const TOPIC_OF: readonly InputTopic[] = ['backend', 'device'];

export class RecordWindow {
  readonly partition: number;
  readonly #names: Readonly<Record<InputTopic, string>>;
  #keys: string[] = [];
  #topics = new Uint8Array(1024);
  /** Per record: offset, timestamp. */
  #numbers = new Float64Array(2048);
  /** Per record: where its value starts and ends in `#bytes` (start -1: a null value). */
  #bounds = new Int32Array(2048);
  #bytes = new Uint8Array(1 << 20);
  #used = 0;
  #length = 0;

  constructor(partition: number, names: Readonly<Record<InputTopic, string>>) {
    this.partition = partition;
    this.#names = names;
  }

  /** Records held. */
  get length(): number {
    return this.#length;
  }

  /** Bytes of values held. */
  get bytes(): number {
    return this.#used;
  }

  /** Append one record of `topic` (its value is copied). */
  push(topic: InputTopic, r: LogRecord): void {
    const v = r.value;
    this.pushValue(topic, r.key, r.offset, r.timestamp, v, 0, v === null ? 0 : v.length);
  }

  /** Append one record of `topic` whose value is `source[start, end)` (copied), or null. */
  pushValue(
    topic: InputTopic,
    key: string,
    offset: number,
    timestamp: number,
    source: Uint8Array | null,
    start: number,
    end: number,
  ): void {
    const i = this.#length;
    if (i === this.#topics.length) this.#grow();
    this.#keys[i] = key;
    this.#topics[i] = TOPIC_CODE[topic];
    this.#numbers[2 * i] = offset;
    this.#numbers[2 * i + 1] = timestamp;
    if (source === null) {
      this.#bounds[2 * i] = -1;
      this.#bounds[2 * i + 1] = -1;
    } else {
      const n = end - start;
      if (this.#used + n > this.#bytes.length) this.#growBytes(this.#used + n);
      this.#bytes.set(start === 0 && end === source.length ? source : source.subarray(start, end), this.#used);
      this.#bounds[2 * i] = this.#used;
      this.#used += n;
      this.#bounds[2 * i + 1] = this.#used;
    }
    this.#length = i + 1;
  }

  key(i: number): string {
    return this.#keys[i]!;
  }

  topic(i: number): InputTopic {
    return TOPIC_OF[this.#topics[i]!]!;
  }

  offset(i: number): number {
    return this.#numbers[2 * i]!;
  }

  timestamp(i: number): number {
    return this.#numbers[2 * i + 1]!;
  }

  /** Length of record `i`'s value (0 for null). */
  valueLength(i: number): number {
    return this.#bounds[2 * i + 1]! - this.#bounds[2 * i]!;
  }

  /**
   * Record `i` as a log record whose value is a view into the window: valid until the window is
   * cleared (a fold that keeps a record past that copies it).
   */
  record(i: number): LogRecord {
    const start = this.#bounds[2 * i]!;
    return {
      topic: this.#names[this.topic(i)],
      partition: this.partition,
      offset: this.offset(i),
      key: this.#keys[i]!,
      value: start < 0 ? null : this.#bytes.subarray(start, this.#bounds[2 * i + 1]),
      timestamp: this.timestamp(i),
      headers: NO_HEADERS,
    };
  }

  /** Empty the window, keeping its arrays for the next one (its keys are overwritten as it fills). */
  clear(): void {
    this.#length = 0;
    this.#used = 0;
  }

  #grow(): void {
    const n = this.#topics.length * 2;
    const topics = new Uint8Array(n);
    topics.set(this.#topics);
    this.#topics = topics;
    const numbers = new Float64Array(2 * n);
    numbers.set(this.#numbers);
    this.#numbers = numbers;
    const bounds = new Int32Array(2 * n);
    bounds.set(this.#bounds);
    this.#bounds = bounds;
  }

  #growBytes(need: number): void {
    let n = this.#bytes.length * 2;
    while (n < need) n *= 2;
    const bytes = new Uint8Array(n);
    bytes.set(this.#bytes.subarray(0, this.#used));
    this.#bytes = bytes;
  }
}
