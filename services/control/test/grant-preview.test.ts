import { describe, expect, it } from 'vitest';
import { previewGrant } from '../src/grant-preview.js';

describe('grant preview on synthetic values', () => {
  const classes = { id: 'public', name: 'personal', phone: 'personal', id_card: 'secret', district: 'public' };

  it('shows each column with its class, its action, a synthetic sample and what the department would receive', () => {
    const preview = previewGrant({ id: 7, spec: { columns: { id: 'pass', name: { mask: 'name' }, phone: { mask: 'phone' }, id_card: 'tokenize', district: 'encrypt', salary: 'pass' }, filter: "district = '海淀'", filterReads: ['district'] } }, classes);
    const byColumn = new Map(preview.columns.map((c) => [c.column, c]));
    expect(preview).toMatchObject({ grant: 7, filter: "district = '海淀'", filterReads: ['district'] });
    expect(byColumn.get('name')).toEqual({ column: 'name', class: 'personal', action: 'mask name', sample: '张三丰', delivered: '张**' });
    expect(byColumn.get('phone')).toMatchObject({ sample: '13812345678', delivered: '138****5678' });
    expect(byColumn.get('id')).toMatchObject({ action: 'pass', delivered: byColumn.get('id')!.sample });
    expect(byColumn.get('id_card')).toMatchObject({ class: 'secret', action: 'tokenize', sample: '110101199003074578', delivered: expect.stringMatching(/^tok:preview:/) });
    expect(byColumn.get('district')!.delivered).toMatch(/aes-256-gcm; opened only with the department's key/);
    // Granted but not classified: nothing is delivered (secure by default).
    expect(byColumn.get('salary')).toMatchObject({ class: null, delivered: null });
  });

  it('tokenizes under a throwaway key: two previews never show the same token', () => {
    const spec = { columns: { id_card: 'tokenize' } };
    expect(previewGrant({ id: 1, spec }, classes).columns[0]!.delivered).not.toBe(previewGrant({ id: 1, spec }, classes).columns[0]!.delivered);
  });
});
