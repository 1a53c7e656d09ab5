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
