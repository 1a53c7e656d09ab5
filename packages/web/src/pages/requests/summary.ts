import { useEffect, useState } from 'react';
import type { MaintenanceSummary } from '@gatehouse/api';
import { api } from '../../api.js';

const CHANGED = 'gatehouse:requests-changed';

/** Tells the navigation's count that a request was created or decided: it reads the count again. */
export function requestsChanged(): void {
  window.dispatchEvent(new Event(CHANGED));
}

/**
 * The navigation's count: requests awaiting my approval plus my own pending ones, read again
 * on every navigation (`location`) and every 30 s; null until known or when it cannot be read.
 */
export function useRequestCount(location: string): number | null {
  const [count, setCount] = useState<number | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let current = true;
    api<MaintenanceSummary>('GET', '/requests/summary').then(
      (s) => current && setCount(s.awaitingMyApproval + s.minePending),
      () => current && setCount(null),
    );
    const again = () => setTick((n) => n + 1);
    const t = setTimeout(again, 30_000);
    window.addEventListener(CHANGED, again);
    return () => {
      current = false;
      clearTimeout(t);
      window.removeEventListener(CHANGED, again);
    };
  }, [location, tick]);
  return count;
}
