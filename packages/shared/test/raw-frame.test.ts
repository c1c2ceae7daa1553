import { describe, expect, it } from 'vitest';
import { FileKeyring } from '../src/crypto/keyring.js';
import { sealJson, sealValue } from '../src/crypto/field-cipher.js';
import { sealedEventAad } from '../src/change-event.js';
import { decodeRawMessage, encodeFrame } from '../src/raw-frame.js';

const keys = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 4).toString('base64') }] } });
const pipeline = keys.activeKey('pipeline');
const event = (id: number, sealed?: string | null) => ({
  op: 'c', before: null, after: { id }, ...(sealed === undefined ? {} : { sealed }),
  source: { db: 'civil', table: 'citizens', version: `000${id}` }, protected: ['name'], schemaRef: 'r',
});
/** The migration window open: the per-event seals of earlier readers are read. */
const legacy = { acceptLegacySeals: true };
const ownSeal = (id: number) => sealValue(pipeline, { after: { name: `n${id}` } }, sealedEventAad('civil', 'citizens', `000${id}`));

/** A frame as the reader lays it out: the sealed array bound to the events array's bytes. */
function frame(events: unknown[], secrets: unknown[]): Buffer {
  const array = JSON.stringify(events);
  return Buffer.from(`{"events":${array},"sealed":"${sealJson(pipeline, Buffer.from(JSON.stringify(secrets)), Buffer.from(array))}"}`);
}

describe('decodeRawMessage', () => {
  it('opens the sealed columns of a frame once for all its events', () => {
    const f = decodeRawMessage(frame([event(1), event(2)], [{ after: { name: 'a' } }, { after: { name: 'b' } }]));
    expect(f.framed).toBe(true);
    expect([f.secretsOf(0, keys), f.secretsOf(1, keys)]).toEqual([{ after: { name: 'a' } }, { after: { name: 'b' } }]);
  });

  it('reads the layout of earlier readers (an array of events with their own seals) and a single event, inside the migration window', () => {
    const array = decodeRawMessage(Buffer.from(JSON.stringify([event(1, ownSeal(1)), event(2, ownSeal(2))])), legacy);
    expect(array.framed).toBe(false);
    expect(array.sealError(keys)).toBeNull();
    expect(array.secretsOf(1, keys)).toEqual({ after: { name: 'n2' } });
    expect(() => decodeRawMessage(Buffer.from(JSON.stringify([event(1, ownSeal(2))])), legacy).secretsOf(0, keys)).toThrow(/does not verify/);
    const one = Buffer.from(JSON.stringify(event(3, ownSeal(3))));
    const single = decodeRawMessage(one, legacy);
    expect(single.events).toHaveLength(1);
    expect(single.secretsOf(0, keys)).toEqual({ after: { name: 'n3' } });
    // Its dead letter stays in its layout: no frame seal vouches for its unauthenticated clear part.
    expect(single.standalone(0, keys)).toEqual(one);
  });

  it('refuses the layout of earlier readers outside the migration window (RECORD_FORGED, whole): its seals leave op, key and clear columns open to edits', () => {
    // A genuine per-event seal, the event's key and a row-filtered column edited: the seal still opens.
    const edited = Buffer.from(JSON.stringify([{ ...event(1, ownSeal(1)), op: 'u', after: { id: 2, district: 'elsewhere' } }]));
    expect(decodeRawMessage(edited, legacy).secretsOf(0, keys)).toEqual({ after: { name: 'n1' } });
    for (const message of [edited, Buffer.from(JSON.stringify(event(3, ownSeal(3))))]) {
      const refused = decodeRawMessage(message);
      expect(refused.sealError(keys)).toMatchObject({ code: 'RECORD_FORGED', message: expect.stringMatching(/TRANSFORMER_ACCEPT_LEGACY_SEALS/) });
      expect(() => refused.secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
    }
  });

  it('refuses a frame whose seal holds another number of entries than it has events, or that is laid out otherwise', () => {
    expect(() => decodeRawMessage(frame([event(1), event(2)], [{ after: { name: 'a' } }])).secretsOf(0, keys)).toThrow(/not one entry per event/);
    const notJson = Buffer.from(`{"events":${JSON.stringify([event(1)])},"sealed":"${sealJson(pipeline, Buffer.from('[nul'), Buffer.from(JSON.stringify([event(1)])))}"}`);
    expect(() => decodeRawMessage(notJson).secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'DECRYPT_FAILED' }));
    const spaced = Buffer.from(frame([event(1)], [{ after: { name: 'a' } }]).toString().replace('{"events":', '{ "events":'));
    expect(() => decodeRawMessage(spaced).secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
  });

  it('refuses a frame that carries no seal, whatever it holds (RECORD_FORGED)', () => {
    const unsealed = decodeRawMessage(Buffer.from(`{"events":${JSON.stringify([{ ...event(1), protected: [] }])},"sealed":null}`));
    expect(unsealed.sealError(keys)).toMatchObject({ code: 'RECORD_FORGED' });
    expect(() => unsealed.secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
    // Its dead letter is the frame as it came.
    expect(unsealed.standalone(0, keys)).toEqual(unsealed.value);
  });

  it('refuses an event altered in an authenticated frame, also when no event has protected columns', () => {
    const clear = [{ ...event(1), protected: [] }, { ...event(2), protected: [] }];
    const sealed = frame(clear, [null, null]);
    expect(decodeRawMessage(sealed).sealError(keys)).toBeNull();
    expect(decodeRawMessage(sealed).secretsOf(1, keys)).toBeNull();
    const altered = decodeRawMessage(Buffer.from(sealed.toString().replace('"after":{"id":2}', '"after":{"id":99}')));
    expect(altered.sealError(keys)).toMatchObject({ code: 'DECRYPT_FAILED' });
    expect(() => altered.secretsOf(1, keys)).toThrow(/does not verify/);
  });

  it('refuses events of the earlier layout that carry no seal of their own: a bare array, one event, protected or not', () => {
    const bare = decodeRawMessage(Buffer.from(JSON.stringify([{ ...event(1), protected: [] }, event(2, ownSeal(2))])), legacy);
    expect(() => bare.secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
    expect(bare.secretsOf(1, keys)).toEqual({ after: { name: 'n2' } });
    expect(() => decodeRawMessage(Buffer.from(JSON.stringify({ ...event(3, null), protected: [] })), legacy).secretsOf(0, keys)).toThrow(expect.objectContaining({ code: 'RECORD_FORGED' }));
  });

  it('opens seals under pipeline keys only: a department key does not pass for one', () => {
    const department = new FileKeyring({ version: 1, keys: { pipeline: [{ id: 'p1', material: Buffer.alloc(32, 4).toString('base64') }], 'department:health': [{ id: 'h1', material: Buffer.alloc(32, 5).toString('base64') }] } });
    const array = JSON.stringify([event(1)]);
    const underDepartmentKey = Buffer.from(`{"events":${array},"sealed":"${sealJson(department.activeKey('department:health'), Buffer.from('[null]'), Buffer.from(array))}"}`);
    expect(decodeRawMessage(underDepartmentKey).sealError(department)).toMatchObject({ code: 'KEY_NOT_FOUND' });
  });

  it('writes a dead letter of one event as a frame of that event, sealed again, that authenticates', () => {
    const f = decodeRawMessage(frame([event(1), event(2)], [{ after: { name: 'a' } }, { after: { name: 'b' } }]));
    const alone = decodeRawMessage(f.standalone(1, keys));
    expect(alone.framed).toBe(true);
    expect(alone.events).toEqual([event(2)]);
    expect(alone.secretsOf(0, keys)).toEqual({ after: { name: 'b' } });
    expect(decodeRawMessage(encodeFrame(pipeline, [event(2)], [{ after: { name: 'b' } }])).secretsOf(0, keys)).toEqual({ after: { name: 'b' } });
  });

  it('binds a dead letter\'s seal to the whole clear event: another key, op, clear column, table or version does not open', () => {
    const clear = { ...event(1), after: { id: 1, district: 'east' } };
    const letter = decodeRawMessage(frame([clear], [{ after: { name: 'a' } }])).standalone(0, keys).toString();
    expect(decodeRawMessage(Buffer.from(letter)).secretsOf(0, keys)).toEqual({ after: { name: 'a' } });
    for (const [from, to] of [['"id":1', '"id":2'], ['"op":"c"', '"op":"u"'], ['"district":"east"', '"district":"west"'], ['"table":"citizens"', '"table":"patients"'], ['"version":"0001"', '"version":"0002"']] as const) {
      const edited = decodeRawMessage(Buffer.from(letter.replace(from, to)));
      expect(edited.sealError(keys), `${from} -> ${to}`).toMatchObject({ code: 'DECRYPT_FAILED' });
    }
  });

  it('reads a frame\'s events from the bytes its seal authenticates only (a second "events" key changes nothing)', () => {
    const array = JSON.stringify([event(1), event(2)]);
    const sealed = sealJson(pipeline, Buffer.from(JSON.stringify([{ after: { name: 'a' } }, { after: { name: 'b' } }])), Buffer.from(array));
    const forged = Buffer.from(`{"events":${array},"sealed":"${sealed}","events":${JSON.stringify([event(2), event(99)])}}`);
    expect(() => decodeRawMessage(forged)).toThrow();
    const appended = Buffer.from(`{"events":${array},"sealed":"${sealed}","events":${JSON.stringify([event(2), event(99)])},"sealed":"${sealed}"}`);
    expect(() => decodeRawMessage(appended)).toThrow(SyntaxError);
  });

  it('throws on what is not a raw message, before any event is read', () => {
    expect(() => decodeRawMessage(Buffer.from('{"op": "c", "source": '))).toThrow(SyntaxError);
    expect(() => decodeRawMessage(Buffer.from('42'))).toThrow(/frame or a change event/);
    expect(() => decodeRawMessage(Buffer.from('{"events":{},"sealed":null}'))).toThrow(/not an array/);
    expect(() => decodeRawMessage(Buffer.from('{"events":[],"sealed":7}'))).toThrow(/not a string or null/);
  });
});
