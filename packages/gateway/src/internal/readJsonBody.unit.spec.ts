import { describe, expect, it } from 'vitest';
import { isJsonContentType } from './readJsonBody.ts';

describe('isJsonContentType', () => {
  it('accepts application/json with no charset or UTF-8, in any case, with other parameters', () => {
    for (const t of [
      'application/json',
      'application/json; charset=utf-8',
      'Application/JSON;Charset="UTF-8"',
      'application/json ; charset=utf8',
      'application/json; odata=verbose',
    ]) {
      expect(isJsonContentType(t), t).toBe(true);
    }
  });

  it('refuses other types, other charsets and no content type', () => {
    for (const t of [
      undefined,
      '',
      'text/plain',
      'text/json',
      'application/jsonp',
      'application/json-patch+json',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'multipart/form-data',
    ]) {
      expect(isJsonContentType(t), String(t)).toBe(false);
    }
  });
});
