import { describe, expect, it } from 'vitest';
import { MAX_TARGET_LENGTH, parseConnectionTarget, printableName } from './connection-target.js';

describe('parseConnectionTarget', () => {
  it('reads user, device and the optional account', () => {
    expect(parseConnectionTarget('alice:web-1')).toEqual({ ok: true, target: { user: 'alice', device: 'web-1', account: undefined } });
    expect(parseConnectionTarget('alice:web-1:root')).toEqual({ ok: true, target: { user: 'alice', device: 'web-1', account: 'root' } });
    expect(parseConnectionTarget('a.b@c:Shop/web 1:deploy')).toEqual({
      ok: true,
      target: { user: 'a.b@c', device: 'Shop/web 1', account: 'deploy' },
    });
  });

  it('reads "+" as the separator as well, and lets the other separator appear in names', () => {
    expect(parseConnectionTarget('admin+dev1')).toEqual({ ok: true, target: { user: 'admin', device: 'dev1', account: undefined } });
    expect(parseConnectionTarget('a.b@c+Shop.web-1+deploy')).toEqual({
      ok: true,
      target: { user: 'a.b@c', device: 'Shop.web-1', account: 'deploy' },
    });
    expect(parseConnectionTarget('admin+db:5432+root')).toMatchObject({ ok: true, target: { device: 'db:5432', account: 'root' } });
    expect(parseConnectionTarget('admin:c++box:root')).toMatchObject({ ok: true, target: { device: 'c++box', account: 'root' } });
  });

  it('reads a space as "+": what sftp:// and scp:// URLs decode a "+" in the user name to', () => {
    expect(parseConnectionTarget('admin dev1 root')).toEqual({ ok: true, target: { user: 'admin', device: 'dev1', account: 'root' } });
    expect(parseConnectionTarget('admin+web 1')).toMatchObject({ ok: true, target: { device: 'web 1', account: undefined } });
  });

  it('says how to write a device name that holds the separator', () => {
    const parsed = parseConnectionTarget('admin+c++box');
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toContain('with ":" as the separator');
  });

  it('accepts unicode device names', () => {
    expect(parseConnectionTarget('alice:サーバー')).toMatchObject({ ok: true, target: { device: 'サーバー' } });
  });

  it.each([
    ['empty', ''],
    ['no device', 'alice'],
    ['empty device', 'a:'],
    ['empty user', ':b'],
    ['empty middle', 'a::c'],
    ['empty account', 'a:b:'],
    ['four parts', 'a:b:c:d'],
    ['four "+" parts', 'a+b+c+d'],
    ['empty device after "+"', 'a+'],
    ['empty account after "+"', 'a+b+'],
    ['"+" first', '+b'],
    ['spaces around a part', 'a: b'],
    ['two spaces', 'a  b'],
    ['a blank part', 'a:   '],
    ['NUL', 'a:b\u0000'],
    ['newline', 'a:b\nc'],
    ['escape', 'a:\u001b[31mred'],
    ['DEL', 'a:b\u007f'],
    ['C1 control', 'a:b\u0085'],
    ['lone surrogate', 'a:b\ud800'],
    ['over-long', `a:${'x'.repeat(MAX_TARGET_LENGTH)}`],
    ['over-long part', `a:${'x'.repeat(201)}`],
    ['unicode user name', 'アリス:web'],
    ['user name with a slash', 'a/b:web'],
    ['project without device', 'a:shop/'],
    ['device without project', 'a:/web'],
    ['a bidi override', 'a:\u202ebew'],
    ['a zero-width space', 'a:we\u200bb'],
    ['a bidi isolate in the account', 'a:web:\u2066root'],
    ['a byte order mark', '\ufeffa:web'],
  ])('refuses %s without echoing the input', (_what, raw) => {
    const parsed = parseConnectionTarget(raw);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.reason).toContain('<user>+<device>[+<account>]');
      if (raw.length > 3) expect(parsed.reason).not.toContain(raw);
    }
  });

  it('makes a refused name printable for the audit log: invisible characters escaped, cut short', () => {
    expect(printableName('a:b:c:d')).toBe('a:b:c:d');
    const escaped = 'admin:\\u{202e}pw-box\\u{200b}\\u{0}\\u{d800}';
    expect(printableName('admin:\u202epw-box\u200b\u0000\ud800')).toBe(escaped);
    expect(printableName(escaped)).toBe(escaped);
    expect(printableName('サーバー')).toBe('サーバー');
    expect(printableName('y'.repeat(600))).toBe(`${'y'.repeat(200)}…`);
  });
});
