import type { RfbChannel } from '@novnc/novnc';

/**
 * The socket noVNC talks through: the page owns the real WebSocket (its first messages are
 * Gatehouse's, not RFB) and pushes the RFB bytes in; the player pushes a recording in and
 * drops what noVNC sends. noVNC sets the on* handlers (it checks they exist) and calls
 * send/close.
 */
export class PushChannel implements RfbChannel {
  binaryType = 'arraybuffer';
  protocol = '';
  readyState: string = 'connecting';
  onopen: RfbChannel['onopen'] = null;
  onmessage: RfbChannel['onmessage'] = null;
  onclose: RfbChannel['onclose'] = null;
  onerror: RfbChannel['onerror'] = null;
  private readonly sendTo: (data: ArrayBuffer | Uint8Array) => void;
  private readonly closeTo: () => void;

  constructor(peer: { send?: (data: ArrayBuffer | Uint8Array) => void; close?: () => void } = {}) {
    this.sendTo = peer.send ?? (() => undefined);
    this.closeTo = peer.close ?? (() => undefined);
  }

  send(data: ArrayBuffer | Uint8Array): void {
    if (this.readyState === 'open') this.sendTo(data);
  }

  /**
   * noVNC ends the connection: the peer is closed, and noVNC hears it closed, later as from
   * a WebSocket (noVNC starts its disconnect timer after calling close()).
   */
  close(): void {
    if (this.readyState === 'closed') return;
    this.closeTo();
    setTimeout(() => this.closed({ code: 1000, reason: '', wasClean: true }), 0);
  }

  open(): void {
    this.readyState = 'open';
    this.onopen?.();
  }

  push(data: ArrayBuffer | Uint8Array): void {
    if (this.readyState !== 'open') return;
    this.onmessage?.({ data: data instanceof ArrayBuffer ? data : data.slice().buffer });
  }

  /** The peer closed (or noVNC closed it). */
  closed(event: { code: number; reason: string; wasClean: boolean }): void {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    this.onclose?.(event);
  }
}
