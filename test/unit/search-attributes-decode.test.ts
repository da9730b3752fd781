// client/visibility.ts decodes raw search attributes with the SDK's public API only
// (the SDK's own decoder lives under @temporalio/common/lib/): it must read every type
// exactly as the SDK does, including the values the SDK leaves out.
import { defaultPayloadConverter, defineSearchAttributeKey, SearchAttributeType, TypedSearchAttributes, type Payload } from '@temporalio/common';
import { decodeTypedSearchAttributes, encodeUnifiedSearchAttributes } from '@temporalio/common/lib/converter/payload-search-attributes';
import { describe, expect, it } from 'vitest';
import { decodeSearchAttributes } from '../../client/visibility';

const typed = (type: string, value: unknown): Payload => {
  const payload = defaultPayloadConverter.toPayload(value) as Payload;
  return { ...payload, metadata: { ...payload.metadata, type: new TextEncoder().encode(type) } };
};

describe('decodeSearchAttributes (public SDK API) reads what the SDK decoder reads', () => {
  it('decodes one attribute of every type to the same values', () => {
    const when = new Date('2026-12-06T22:00:00.000Z');
    const fields = encodeUnifiedSearchAttributes(
      undefined,
      new TypedSearchAttributes([
        { key: defineSearchAttributeKey('SlotId', SearchAttributeType.KEYWORD), value: 'cx-1' },
        { key: defineSearchAttributeKey('Note', SearchAttributeType.TEXT), value: 'a note' },
        { key: defineSearchAttributeKey('Count', SearchAttributeType.INT), value: 42 },
        { key: defineSearchAttributeKey('Ratio', SearchAttributeType.DOUBLE), value: 0.5 },
        { key: defineSearchAttributeKey('Ok', SearchAttributeType.BOOL), value: true },
        { key: defineSearchAttributeKey('SlotExpiresAt', SearchAttributeType.DATETIME), value: when },
        { key: defineSearchAttributeKey('Tags', SearchAttributeType.KEYWORD_LIST), value: ['a', 'b'] },
      ]),
    );
    const ours = decodeSearchAttributes(fields);
    expect(ours.getAll()).toEqual(decodeTypedSearchAttributes(fields).getAll());
    expect(ours.getAll()).toHaveLength(7);
    expect(ours.get(defineSearchAttributeKey('SlotExpiresAt', SearchAttributeType.DATETIME))?.toISOString()).toBe(when.toISOString());
  });

  it('leaves out what the SDK leaves out: no type, an unknown type, a wrong shape; unpacks a one-element array', () => {
    const fields: Record<string, Payload> = {
      Untyped: defaultPayloadConverter.toPayload('x') as Payload,
      Unknown: typed('Blob', 'x'),
      TwoKeywords: typed('Keyword', ['a', 'b']),
      NoKeyword: typed('Keyword', []),
      NotAnInt: typed('Int', 1.5),
      Wrapped: typed('Keyword', ['only']),
      Legacy: typed('Datetime', ['2026-12-06T22:00:00.000Z']),
    };
    const ours = decodeSearchAttributes(fields);
    expect(ours.getAll()).toEqual(decodeTypedSearchAttributes(fields).getAll());
    expect(ours.getAll().map((p) => p.key.name).sort()).toEqual(['Legacy', 'Wrapped']);
    expect(decodeSearchAttributes(undefined).getAll()).toEqual([]);
  });
});
