import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ServiceAccount, Service, PersistentVolumeClaim, type IContainer, type IPodSpec } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';

/**
 * deploy/kubernetes rendered by `kubectl kustomize` (no cluster runs here): every object
 * valid against the Kubernetes schemas (kubernetes-models), plus what matters to us: probes,
 * no container as root, secrets only from Secrets, resources set.
 */
const root = fileURLToPath(new URL('../../deploy/kubernetes', import.meta.url));
const run = promisify(execFile);

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  [key: string]: unknown;
}

const models: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

async function render(overlay: string): Promise<Manifest[]> {
  const { stdout } = await run('kubectl', ['kustomize', path.join(root, 'overlays', overlay)]);
  return parseAllDocuments(stdout).map((d) => d.toJS() as Manifest);
}

const deployments = (objects: Manifest[]) => objects.filter((o) => o.kind === 'Deployment') as unknown as Deployment[];
const podSpec = (d: Deployment): IPodSpec => d.spec!.template.spec!;
/** Env values that look like a secret written in: keys, passwords, tokens, DSNs with a password. */
const SECRET_NAME = /(KEY|PASSWORD|TOKEN|SECRET|DATABASE_URL)$/;
/** Named like a secret but public: the server's public key the remote gateway pins. */
const PUBLIC = new Set(['GATEHOUSE_SERVER_KEY']);
/** Env values that are paths to a secret file: the file must be on a mounted Secret. */
const SECRET_FILE = /(_KEY_FILE|_TLS_CERT|_TLS_KEY|_BREAKGLASS_CONFIG)$/;

describe.each(['embedded', 'ha'])('deploy/kubernetes/overlays/%s', (overlay) => {
  it('renders, and every object is valid against the Kubernetes schemas', async () => {
    const objects = await render(overlay);
    expect(objects.length).toBeGreaterThan(3);
    for (const o of objects) {
      const Model = models[`${o.apiVersion}/${o.kind}`];
      expect(Model, `${o.apiVersion} ${o.kind} ${o.metadata.name}: add its model to this test`).toBeDefined();
      expect(() => new Model!(o as never).validate(), `${o.kind} ${o.metadata.name}`).not.toThrow();
      expect((o.metadata as { namespace?: string }).namespace, `${o.kind} ${o.metadata.name}`).toBe('gatehouse');
    }
    // What the manifests reference by name exists in the rendering or is made by the operator (docs/DEPLOY.md).
    const names = new Set(objects.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const d of deployments(objects)) {
      for (const v of podSpec(d).volumes ?? []) {
        if (v.persistentVolumeClaim) expect(names.has(`PersistentVolumeClaim/${v.persistentVolumeClaim.claimName}`)).toBe(true);
      }
      expect(names.has(`ServiceAccount/${podSpec(d).serviceAccountName}`)).toBe(true);
    }
  });

  it('runs no container as root, read-only, without privileges, with probes and resources', async () => {
    for (const d of deployments(await render(overlay))) {
      const pod = podSpec(d);
      expect(pod.securityContext?.runAsNonRoot, d.metadata!.name).toBe(true);
      expect(pod.automountServiceAccountToken).toBe(false);
      const containers: IContainer[] = [...(pod.initContainers ?? []), ...pod.containers];
      for (const c of containers) {
        const where = `${d.metadata!.name}/${c.name}`;
        const sc = c.securityContext ?? {};
        expect(sc.runAsNonRoot, where).toBe(true);
        expect(sc.runAsUser ?? pod.securityContext?.runAsUser, where).toBeGreaterThan(0);
        expect(sc.readOnlyRootFilesystem, where).toBe(true);
        expect(sc.allowPrivilegeEscalation, where).toBe(false);
        expect(sc.privileged ?? false, where).toBe(false);
        expect(sc.capabilities?.drop, where).toEqual(['ALL']);
        expect(sc.capabilities?.add ?? [], where).toEqual([]);
        expect(c.livenessProbe, where).toBeDefined();
        expect(c.readinessProbe, where).toBeDefined();
        for (const kind of ['requests', 'limits'] as const) {
          expect(c.resources?.[kind]?.cpu, `${where} ${kind}.cpu`).toBeDefined();
          expect(c.resources?.[kind]?.memory, `${where} ${kind}.memory`).toBeDefined();
        }
        // Secrets reach the process from Secrets only: as files or secretKeyRef, never a literal value.
        for (const e of c.env ?? []) {
          if (SECRET_NAME.test(e.name) && !PUBLIC.has(e.name) && !SECRET_FILE.test(e.name)) {
            expect(e.value, `${where} env ${e.name} is written in: take it from a Secret`).toBeUndefined();
            expect(e.valueFrom?.secretKeyRef, `${where} env ${e.name}`).toBeDefined();
          }
        }
        expect(c.envFrom ?? [], `${where}: envFrom only from Secrets`).toEqual((c.envFrom ?? []).filter((f) => f.secretRef));
      }
      // Every file a *_FILE / key path env names is on a mounted Secret volume.
      const secretMounts = containers
        .flatMap((c) => c.volumeMounts ?? [])
        .filter((m) => pod.volumes?.find((v) => v.name === m.name)?.secret);
      for (const e of containers.flatMap((c) => c.env ?? [])) {
        if (SECRET_FILE.test(e.name)) {
          expect(
            secretMounts.some((m) => e.value?.startsWith(m.mountPath)),
            `${d.metadata!.name} ${e.name}=${e.value} is on a Secret`,
          ).toBe(true);
        }
      }
      // A Secret is mounted read-only, readable by its owner only (the kubelet adds group read for fsGroup).
      for (const m of secretMounts) expect(m.readOnly, `${d.metadata!.name} mount ${m.mountPath}`).toBe(true);
      for (const v of pod.volumes ?? []) if (v.secret) expect(v.secret.defaultMode, `${d.metadata!.name} volume ${v.name}`).toBe(0o400);
    }
  });

  it('publishes no port twice on LoadBalancer Services (K3s ServiceLB binds each once per node)', async () => {
    const published = (await render(overlay))
      .filter((o) => o.kind === 'Service')
      .map((o) => o as unknown as Service)
      .filter((s) => s.spec?.type === 'LoadBalancer')
      .flatMap((s) => (s.spec?.ports ?? []).map((p) => p.port));
    expect(published.length).toBeGreaterThan(0);
    expect(published).toEqual([...new Set(published)]);
  });
});

describe('what each overlay promises', () => {
  it('embedded: one replica, the data directory on a PVC, the master key from a Secret, Recreate', async () => {
    const objects = await render('embedded');
    const [server, ...others] = deployments(objects);
    expect(others).toEqual([]);
    expect(server!.spec!.replicas).toBe(1);
    expect(server!.spec!.strategy?.type).toBe('Recreate');
    const pod = podSpec(server!);
    expect(pod.volumes?.find((v) => v.name === 'data')).toEqual({ name: 'data', persistentVolumeClaim: { claimName: 'gatehouse-data' } });
    expect(pod.volumes?.find((v) => v.name === 'master-key')?.secret?.secretName).toBe('gatehouse-master-key');
    const env = pod.containers[0]!.env ?? [];
    expect(env.find((e) => e.name === 'DATABASE_URL')).toBeUndefined();
    expect(env.find((e) => e.name === 'GATEHOUSE_MASTER_KEY_FILE')?.value).toBe('/etc/gatehouse/master-key/master-key');
    // The built-in gateway's host key is generated once on the PVC, where it stays across restarts.
    expect(env.find((e) => e.name === 'GATEHOUSE_GATEWAY_HOST_KEY_FILE')).toBeUndefined();
  });

  it('ha: replicas on PostgreSQL from a Secret, a PDB, probes on /readyz and /healthz, a gateway per segment, the ports', async () => {
    const objects = await render('ha');
    const server = deployments(objects).find((d) => d.metadata!.name === 'gatehouse-server')!;
    expect(server.spec!.replicas).toBeGreaterThan(1);
    const c = podSpec(server).containers[0]!;
    expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(c.env?.find((e) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef).toEqual({
      name: 'gatehouse-postgres',
      key: 'database-url',
    });
    expect(c.env?.find((e) => e.name === 'GATEHOUSE_BREAKGLASS_CONFIG')?.value).toBe('/etc/gatehouse/breakglass');
    expect(podSpec(server).volumes?.find((v) => v.name === 'breakglass')?.secret?.secretName).toBe('gatehouse-breakglass');

    const pdb = objects.find((o) => o.kind === 'PodDisruptionBudget') as unknown as PodDisruptionBudget;
    expect(pdb.spec?.selector?.matchLabels).toEqual(server.spec!.selector.matchLabels);

    const gateway = deployments(objects).find((d) => d.metadata!.name === 'gatehouse-gateway-office1')!;
    expect(gateway.spec!.template.spec!.containers[0]!.args).toEqual(['gateway']);
    expect(podSpec(gateway).volumes?.find((v) => v.name === 'key')?.secret?.secretName).toBe('gatehouse-gateway-office1');

    // One SSH host key for every replica, and for every restart of the remote gateway: a file on a Secret.
    const hostKeyFile = (d: Deployment) => podSpec(d).containers[0]!.env?.find((e) => e.name === 'GATEHOUSE_GATEWAY_HOST_KEY_FILE')?.value;
    expect(hostKeyFile(server)).toBe('/etc/gatehouse/ssh-host-key/ssh_host_ed25519_key');
    expect(podSpec(server).volumes?.find((v) => v.name === 'ssh-host-key')?.secret).toEqual({
      secretName: 'gatehouse-ssh-host-key',
      defaultMode: 0o400,
    });
    expect(hostKeyFile(gateway)).toBe('/etc/gatehouse/ssh-host-key/ssh_host_ed25519_key');
    expect(podSpec(gateway).volumes?.find((v) => v.name === 'ssh-host-key')?.secret).toEqual({
      secretName: 'gatehouse-gateway-office1',
      items: [{ key: 'ssh_host_ed25519_key', path: 'ssh_host_ed25519_key' }],
      defaultMode: 0o400,
    });

    const service = (name: string) => objects.find((o) => o.kind === 'Service' && o.metadata.name === name) as unknown as Service;
    const ports = (name: string) => (service(name).spec?.ports ?? []).map((p) => p.port);
    expect(ports('gatehouse')).toEqual([443, 7993, 7994, 7995, 7996]);
    // The management port stays inside the cluster; the segment's users and agents use ports of their own.
    expect(service('gatehouse-gateway-office1').spec?.type).toBe('ClusterIP');
    expect(ports('gatehouse-gateway-office1')).toEqual([9443]);
    expect(ports('gatehouse-gateway-office1-entry')).toEqual([8993, 8996]);
    // A TCP load balancer keeps users' addresses (rate limits, throttles, audit) only with Local.
    const loadBalancers = objects.filter((o) => o.kind === 'Service').map((o) => o as unknown as Service);
    expect(
      loadBalancers.filter((s) => s.spec?.type === 'LoadBalancer').map((s) => [s.metadata?.name, s.spec?.externalTrafficPolicy]),
    ).toEqual([
      ['gatehouse', 'Local'],
      ['gatehouse-gateway-office1-entry', 'Local'],
    ]);
  });
});
