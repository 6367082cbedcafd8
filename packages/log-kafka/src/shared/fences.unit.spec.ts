/**
 * A failed transaction (`Fences.fail`): its producer is kept only when the abort went through and
 * the producer is still usable; a fenced one loses the fence for good.
 */
import { describe, expect, it } from 'vitest';
import { Fences } from './fences.ts';

const failure = new Error('send failed');

async function fail(options: {
  abort?: 'ok' | 'throws';
  fenced?: boolean;
  unusable?: boolean;
}): Promise<{ dropped: boolean; error: unknown }> {
  let dropped = false;
  const error = await new Fences()
    .fail('f', failure, {
      isFenced: () => options.fenced === true,
      abort:
        options.abort === undefined
          ? undefined
          : options.abort === 'ok'
            ? async () => {}
            : () => Promise.reject(new Error('no')),
      drop: async () => {
        dropped = true;
      },
      ...(options.unusable === undefined ? {} : { unusable: options.unusable }),
    })
    .catch((e: unknown) => e);
  return { dropped, error };
}

describe('Fences.fail', () => {
  it('keeps a producer whose transaction was aborted cleanly, and rethrows', async () => {
    expect(await fail({ abort: 'ok' })).toEqual({ dropped: false, error: failure });
  });

  it('drops a producer whose sequence state is lost even after a clean abort (the next transaction starts a new one)', async () => {
    expect(await fail({ abort: 'ok', unusable: true })).toEqual({ dropped: true, error: failure });
  });

  it('drops a producer that could not abort, or had nothing to abort', async () => {
    expect((await fail({ abort: 'throws' })).dropped).toBe(true);
    expect((await fail({})).dropped).toBe(true);
  });

  it('drops a fenced producer and answers LOG_FENCED', async () => {
    const { dropped, error } = await fail({ abort: 'ok', fenced: true });
    expect(dropped).toBe(true);
    expect(error).toMatchObject({ code: 'LOG_FENCED' });
  });
});
