/**
 * The extension codec of every twinlog `Encoder` and `Decoder`: no extension types at all. Encoding
 * never produces one (values are checked to be plain data first, and this codec turns nothing into
 * an ext, not even `Date`), and decoding refuses one as `CODEC_BAD_DATA` (the pre-scan already
 * does; this is the second line).
 */
import type { ExtensionCodecType } from '@msgpack/msgpack';
import { TwinlogError } from '@twinlog/core';

export const NO_EXTENSIONS: ExtensionCodecType<undefined> = {
  tryToEncode: () => null,
  decode: (_data, type) => {
    throw new TwinlogError('CODEC_BAD_DATA', `msgpack extension type ${type} is not allowed`);
  },
};
