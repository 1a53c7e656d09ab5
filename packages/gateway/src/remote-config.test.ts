import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { generateLinkIdentity } from './identity.js';
import { loadRemoteGatewayConfig } from './remote.js';

const serverKey = generateLinkIdentity('gatehouse-server').publicKey;

describe("the remote gateway's agent listener settings", () => {
  it('listens for host agents on 7996 unless told otherwise, and 0 turns it off', () => {
    expect(loadRemoteGatewayConfig({ serverKey }, {})).toMatchObject({ agentPort: 7996 });
    expect(loadRemoteGatewayConfig({ serverKey, agentPort: '0' }, {})).toMatchObject({ agentPort: 0 });
    expect(loadRemoteGatewayConfig({ serverKey }, { GATEHOUSE_GATEWAY_AGENT_ADDRESS: 'gw.example.net:443' })).toMatchObject({
      agentAddress: 'gw.example.net:443',
    });
  });

  it('names the flag and variable of a bad agent port or address, without echoing it', () => {
    expect(() => loadRemoteGatewayConfig({ serverKey, agentPort: 'x', agentAddress: 'no-port-secretish' }, {})).toThrow(
      /agentPort --agent-port \(GATEHOUSE_GATEWAY_AGENT_PORT\): must be a port number[\s\S]*agentAddress --agent-address \(GATEHOUSE_GATEWAY_AGENT_ADDRESS\): must be host:port/,
    );
    expect(() => loadRemoteGatewayConfig({ serverKey, agentAddress: 'no-port-secretish' }, {})).not.toThrow(/secretish/);
  });
});

describe("the remote gateway's SSH host key file", () => {
  it('comes from --host-key-file or GATEHOUSE_GATEWAY_HOST_KEY_FILE, as an absolute path; unset, the key is generated', () => {
    expect(loadRemoteGatewayConfig({ serverKey }, {}).hostKeyFile).toBeUndefined();
    expect(loadRemoteGatewayConfig({ serverKey }, { GATEHOUSE_GATEWAY_HOST_KEY_FILE: '/etc/gatehouse/host-key/key' })).toMatchObject({
      hostKeyFile: '/etc/gatehouse/host-key/key',
    });
    expect(loadRemoteGatewayConfig({ serverKey, hostKeyFile: 'key' }, { GATEHOUSE_GATEWAY_HOST_KEY_FILE: '/other' }).hostKeyFile).toBe(
      path.resolve('key'),
    );
  });
});
