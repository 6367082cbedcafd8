/**
 * IoT Hub's device topics (docs/iot-hub.md, "MQTT") and the per-device access rules of the MQTT
 * gateway: what a device may publish and subscribe to, and MQTT filter matching for the
 * gateway's own per-client delivery (responses and notifications are addressed to one client,
 * never routed by topic across devices).
 */

/** What a device publish is. */
export type DeviceRequest =
  | { readonly kind: 'get'; readonly rid: string }
  | { readonly kind: 'reported'; readonly rid: string }
  | { readonly kind: 'desired-write'; readonly rid: string }
  | { readonly kind: 'unsupported-twin'; readonly rid: string }
  | { readonly kind: 'telemetry' }
  | { readonly kind: 'forbidden' };

export const TWIN_RESPONSE_FILTER = '$iothub/twin/res/#';
export const DESIRED_FILTER = '$iothub/twin/PATCH/properties/desired/#';

/** The `?…` property bag of a topic (URL-encoded, docs/iot-hub.md "MQTT (devices)"). */
export function topicProperties(topic: string): URLSearchParams {
  const q = topic.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : topic.slice(q + 1));
}

/**
 * The topic root of twin id `deviceId`: `devices/{id}`, or `devices/{deviceId}/modules/{moduleId}`
 * for a module's `{deviceId}/{moduleId}` (docs/iot-hub.md, "Module identities and module twins").
 */
function ownRoot(deviceId: string): string {
  const slash = deviceId.indexOf('/');
  return slash < 0 ? `devices/${deviceId}` : `devices/${deviceId.slice(0, slash)}/modules/${deviceId.slice(slash + 1)}`;
}

/**
 * Classify a publish by device `deviceId` (docs/iot-hub.md "MQTT (devices)"; D2C messages `devices/{id}/messages/events/…`, a
 * module's `devices/{deviceId}/modules/{moduleId}/messages/events/…`).
 */
export function classifyPublish(deviceId: string, topic: string): DeviceRequest {
  if (topic.startsWith('$iothub/twin/')) {
    const q = topic.indexOf('?');
    const path = q < 0 ? topic : topic.slice(0, q);
    const rid = topicProperties(topic).get('$rid');
    if (rid === null) return { kind: 'forbidden' };
    if (path === '$iothub/twin/GET/') return { kind: 'get', rid };
    if (path === '$iothub/twin/PATCH/properties/reported/') return { kind: 'reported', rid };
    if (path.startsWith('$iothub/twin/PATCH/properties/desired')) return { kind: 'desired-write', rid };
    return { kind: 'unsupported-twin', rid };
  }
  const own = `${ownRoot(deviceId)}/messages/events/`;
  if (topic === own.slice(0, -1) || topic.startsWith(own)) return { kind: 'telemetry' };
  return { kind: 'forbidden' };
}

/**
 * May device `deviceId` subscribe to `filter`? Its twin responses and desired notifications
 * (any filter under `$iothub/twin/res/` or `$iothub/twin/PATCH/properties/desired/`: delivery is
 * per client, so these never show another device's traffic), its own cloud-to-device messages and
 * direct methods. Anything else, `#` and `+` across devices included, is refused.
 */
export function maySubscribe(deviceId: string, filter: string): boolean {
  if (filter === '$iothub/twin/res/#' || filter.startsWith('$iothub/twin/res/')) return true;
  if (
    filter === '$iothub/twin/PATCH/properties/desired/#' ||
    filter.startsWith('$iothub/twin/PATCH/properties/desired/')
  )
    return true;
  if (filter === '$iothub/methods/POST/#' || filter.startsWith('$iothub/methods/POST/')) return true;
  // a device id may contain `+` or `#` (docs/iot-hub.md "The twin document"): as a filter level it would be a wildcard across devices
  if (/[+#]/.test(deviceId)) return false;
  // a module's input messages (accepted, nothing is sent), a device's cloud-to-device messages
  return deviceId.includes('/')
    ? filter.startsWith(`${ownRoot(deviceId)}/inputs/`)
    : filter.startsWith(`devices/${deviceId}/messages/devicebound/`);
}

/** Topic filter matching (MQTT 3.1.1 §4.7): `+` one level, `#` the rest (including the parent). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}
