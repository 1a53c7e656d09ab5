import SQLite from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cachedStatements } from './statement-cache.js';

describe('cachedStatements', () => {
  const open = () => {
    const database = new SQLite(':memory:');
    database.exec('create table t (n integer)');
    database.exec('insert into t values (1), (2), (3)');
    return database;
  };

  it('prepares a query once and answers it again from the same statement', () => {
    const database = open();
    const cached = cachedStatements(database);
    const first = cached.prepare('select n from t where n > ?');
    expect(cached.prepare('select n from t where n > ?')).toBe(first);
    expect(first.all([1])).toEqual([{ n: 2 }, { n: 3 }]);
    cached.close();
    expect(database.open).toBe(false);
  });

  it('gives a statement of its own while the kept one is iterating', () => {
    const cached = cachedStatements(open());
    const sql = 'select n from t order by n';
    const outer = cached.prepare(sql);
    const seen: number[][] = [];
    for (const row of outer.iterate([]) as Iterable<{ n: number }>) {
      const inner = cached.prepare(sql);
      expect(inner).not.toBe(outer);
      seen.push((inner.all([]) as { n: number }[]).map((r) => r.n * row.n));
    }
    expect(seen).toEqual([
      [1, 2, 3],
      [2, 4, 6],
      [3, 6, 9],
    ]);
    expect(cached.prepare(sql)).toBe(outer);
    cached.close();
  });

  it('keeps at most `size` statements, dropping the least recently used', () => {
    const cached = cachedStatements(open(), 2);
    const a = cached.prepare('select 1');
    const b = cached.prepare('select 2');
    expect(cached.prepare('select 1')).toBe(a); // a is now the most recent
    cached.prepare('select 3'); // drops b
    expect(cached.prepare('select 1')).toBe(a);
    expect(cached.prepare('select 2')).not.toBe(b);
    cached.close();
  });

  it('answers after a schema change with the columns the table has now', () => {
    const cached = cachedStatements(open());
    expect(cached.prepare('select * from t limit 1').all([])).toEqual([{ n: 1 }]);
    cached.prepare('alter table t add column m integer default 7').run([]);
    expect(cached.prepare('select * from t limit 1').all([])).toEqual([{ n: 1, m: 7 }]);
    cached.close();
  });
});
