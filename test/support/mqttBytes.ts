/** Raw MQTT bytes for tests that speak below the client libraries. */

/** A fixed header: the packet type's byte, then `remainingLength` in MQTT's variable-length encoding. */
export function fixedHeader(type: number, remainingLength: number): Buffer {
  const bytes = [type << 4];
  let x = remainingLength;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    bytes.push(b);
  } while (x > 0);
  return Buffer.from(bytes);
}
