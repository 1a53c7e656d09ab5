import { createRequire } from 'node:module';
import type { Connection } from 'ssh2';

/**
 * ssh2's `Connection.end()` sends SSH_MSG_DISCONNECT with an empty description, so OpenSSH
 * prints "Received disconnect from … port 7993:11: " and nothing after it. This sends the
 * same message (reason 11, by application) with a description the user can read, built
 * as ssh2's own `Protocol.disconnect` builds it. Should ssh2's internals not be there (a
 * changed ssh2), it falls back to `end()`.
 */

const require = createRequire(import.meta.url);
const { sendPacket } = require('ssh2/lib/protocol/utils.js') as {
  sendPacket?: (protocol: unknown, packet: Buffer, bypass?: boolean) => void;
};

interface PacketWriter {
  allocStartKEX: number;
  alloc(length: number, forceOutput?: boolean): Buffer;
  finalize(packet: Buffer, forceOutput?: boolean): Buffer;
}

interface ConnectionInternals {
  _protocol?: { _packetRW?: { write?: PacketWriter } };
  _sock?: { writable?: boolean; end(): void };
}

const MSG_DISCONNECT = 1;
const DISCONNECT_BY_APPLICATION = 11;

/** Closes the connection, telling the client `description` (cut to 1,000 characters). */
export function disconnect(connection: Connection, description: string): void {
  const { _protocol: protocol, _sock: socket } = connection as unknown as ConnectionInternals;
  const writer = protocol?._packetRW?.write;
  if (!writer || !sendPacket || !socket) return void connection.end();
  if (!socket.writable) return;
  const text = Buffer.from(description.slice(0, 1000), 'utf8');
  let p = writer.allocStartKEX;
  const packet = writer.alloc(1 + 4 + 4 + text.length + 4, true);
  packet[p] = MSG_DISCONNECT;
  packet.writeUInt32BE(DISCONNECT_BY_APPLICATION, ++p);
  packet.writeUInt32BE(text.length, (p += 4));
  text.copy(packet, (p += 4));
  // The language tag: none.
  packet.writeUInt32BE(0, p + text.length);
  sendPacket(protocol, writer.finalize(packet, true), true);
  socket.end();
}
