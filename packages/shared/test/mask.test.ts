import { describe, expect, it } from 'vitest';
import { applyMask, masks } from '../src/policy/mask.js';

describe('masks', () => {
  it('keeps the carrier prefix and last four digits of a mobile phone', () => {
    expect(masks.phone('13812341234')).toBe('138****1234');
    expect(masks.phone('+8613812341234')).toBe('+86138****1234');
  });

  it('keeps region code and check digit of an 18-digit resident ID', () => {
    expect(masks.id_card('11010119900101123X')).toBe('110101***********X');
    expect(masks.id_card('110101900101123')).toBe('110101*********');
  });

  it('keeps the surname of Chinese names and initials of Latin names', () => {
    expect(masks.name('张三')).toBe('张*');
    expect(masks.name('欧阳娜娜')).toBe('欧***');
    expect(masks.name('John Smith')).toBe('J*** S****');
  });

  it('counts code points, not UTF-16 units', () => {
    expect(masks.full('😀张')).toBe('**');
    expect(applyMask({ keep: { first: 1, last: 1, char: '#' } }, '😀ab😀')).toBe('😀##😀');
  });

  it('masks email, bank card, address, plate and birth date', () => {
    expect(masks.email('alice@example.gov.cn')).toBe('a****@example.gov.cn');
    expect(masks.bank_card('6222 0212 3456 7890')).toBe('622202******7890');
    expect(masks.address('北京市海淀区中关村大街1号')).toBe('北京市海淀区*******');
    expect(masks.plate('京A12345')).toBe('京A***45');
    expect(masks.date_to_year('1990-05-17')).toBe('1990');
  });

  it('masks numbers as their text', () => {
    expect(applyMask('phone', 13812341234)).toBe('138****1234');
  });
});
