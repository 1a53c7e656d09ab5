import type * as Desktop from './Desktop.js';

type DesktopModule = typeof Desktop;

let loaded: DesktopModule | undefined;

/**
 * The desktop page's chunk (noVNC is large): loaded when a desktop is first opened, and
 * fetched ahead by a device page that offers one, so that "Open desktop" does not wait for it.
 */
export function loadDesktopPage(): Promise<DesktopModule> {
  return import('./Desktop.js').then((module) => (loaded = module));
}

/**
 * The module once it has loaded, to render the page without suspending: React holds back
 * the content of a boundary that showed its fallback for up to 300 ms (its fallback
 * throttle), which was most of the time from "Open desktop" to the desktop's WebSocket.
 */
export function loadedDesktopPage(): DesktopModule | undefined {
  return loaded;
}
