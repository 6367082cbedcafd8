import { describe, expect, it } from 'vitest';
import { COMPACTED_SEGMENT_BYTES, COMPACTED_SEGMENT_MS, topicConfigOf } from './checks.ts';

const asRecord = (entries: { name: string; value: string }[]): Record<string, string> =>
  Object.fromEntries(entries.map((e) => [e.name, e.value]));

describe('topicConfigOf', () => {
  it('gives compacted topics short segments, so compaction keeps their tail short', () => {
    expect(asRecord(topicConfigOf({ name: 'twin.snapshots', partitions: 4, compacted: true }))).toEqual({
      'message.timestamp.type': 'LogAppendTime',
      'cleanup.policy': 'compact',
      'segment.ms': String(COMPACTED_SEGMENT_MS),
      'segment.bytes': String(COMPACTED_SEGMENT_BYTES),
    });
  });

  it('leaves segments of other topics to the broker, takes retention from the spec and extra configs over all', () => {
    const config = asRecord(
      topicConfigOf({ name: 'twin.device', partitions: 4, retentionMs: 1_000 }, () => ({ 'segment.ms': '500' })),
    );
    expect(config).toEqual({ 'message.timestamp.type': 'LogAppendTime', 'retention.ms': '1000', 'segment.ms': '500' });
  });
});
