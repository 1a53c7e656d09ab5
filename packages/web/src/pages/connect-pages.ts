import { preloadablePage } from '../preloadable.js';

/** xterm.js is large: loaded when a terminal is first opened, or ahead by a device page that offers one. */
export const terminalPage = preloadablePage(() => import('./Terminal.js').then((m) => m.TerminalPage));
/** noVNC likewise, for desktops. */
export const desktopPage = preloadablePage(() => import('./desktop/Desktop.js').then((m) => m.DesktopPage));
