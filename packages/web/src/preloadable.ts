import { createElement, lazy, useState, type ComponentType, type ReactElement } from 'react';

/**
 * A page whose chunk is large (xterm.js, noVNC): loaded when it is first opened, or fetched
 * ahead (`preload`) by a page that links to it, so that the click does not wait for it. Once
 * loaded it renders without suspending: React holds back the content of a boundary that
 * showed its fallback for up to 300 ms (its fallback throttle), which was most of the time
 * from "Open desktop" to the desktop's WebSocket.
 */
export function preloadablePage<P extends object>(
  load: () => Promise<ComponentType<P>>,
): { Page: (props: P) => ReactElement; preload: () => Promise<unknown> } {
  let loaded: ComponentType<P> | undefined;
  const preload = () => load().then((component) => (loaded = component));
  const Lazy = lazy(() => preload().then((component) => ({ default: component })));
  // Chosen once, at mount: switching from the lazy form to the loaded one would remount the page.
  function Page(props: P): ReactElement {
    const [component] = useState(() => loaded);
    return createElement(component ?? Lazy, props);
  }
  return { Page, preload };
}
