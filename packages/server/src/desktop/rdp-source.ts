import net from 'node:net';
import type { AccessBroker, AuthorizedTarget, DesktopBroker, DesktopSource, GatewayUser, TargetDialer } from '@gatehouse/gateway';
import type { RdpRenderer } from './rdp-renderer.js';

export interface RdpSourceContext {
  target: AuthorizedTarget;
  user: GatewayUser;
  remoteAddress: string;
  /** The built-in gateway's dialer: the renderer's RDP connection goes where the device's segment and tunnel mode choose. */
  dial: TargetDialer;
  broker: Pick<AccessBroker, 'checkHostKey'> & Pick<DesktopBroker, 'trustedHostKey'>;
  /** Aborts when the user hangs up: a renderer still starting is stopped. */
  signal?: AbortSignal | undefined;
}

/**
 * A browser RDP session as `openDesktop`'s source: the renderer started for the authorized
 * target with the vaulted credential, and a connection to its local VNC server, which then
 * goes through the same RFB handshake, proxy and recorder as a VNC device.
 */
export function renderedRdpSource(renderer: RdpRenderer, context: RdpSourceContext): DesktopSource {
  return async (credential) => {
    const opened = await renderer.open({ ...context, credential });
    if (!opened.ok) return opened;
    const { session } = opened;
    const via = { gateway: session.gateway, segment: session.segment };
    try {
      const socket = await connectLocal(session.vncPort);
      socket.setNoDelay(true);
      return {
        ok: true,
        desktop: {
          socket,
          password: session.vncPassword,
          ...via,
          close: (reason) => session.close(reason),
          exited: session.exited,
        },
      };
    } catch (error) {
      const message = `The RDP session's display for ${context.target.deviceName} did not take the connection (${(error as Error).message}). Try again.`;
      await session.close(message);
      return { ok: false, message, ...via };
    }
  };
}

function connectLocal(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
