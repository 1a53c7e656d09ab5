import { useState } from 'react';
import type { Device, Project } from '@gatehouse/api';
import { protocols as PROTOCOLS, providers as PROVIDERS } from '@gatehouse/core/inventory';
import { api } from '../api.js';
import { Field, FormEnd, useSubmit } from '../ui.js';

const ACCESS_TYPES = ['gateway', 'direct', 'tunnel', 'agent'] as const;

/** Create a device, or edit one; the API's messages appear under the fields they name. */
export function DeviceForm({
  projects,
  device,
  onSaved,
  onCancel,
}: {
  projects: Project[];
  device?: Device;
  onSaved: (device: Device) => void;
  onCancel: () => void;
}) {
  const [projectId, setProjectId] = useState(device?.projectId ?? projects[0]?.id ?? '');
  const [name, setName] = useState(device?.name ?? '');
  const [provider, setProvider] = useState(device?.provider ?? 'on-prem');
  const [protocols, setProtocols] = useState<string[]>(device?.protocols ?? ['ssh']);
  const [publicIp, setPublicIp] = useState(device?.publicIp ?? '');
  const [privateIp, setPrivateIp] = useState(device?.privateIp ?? '');
  const [urlPort, setUrlPort] = useState(device?.urlPort ?? '');
  const [accessType, setAccessType] = useState(device?.accessType ?? 'gateway');
  const [tags, setTags] = useState((device?.tags ?? []).join(' '));
  const [maintenanceRequired, setMaintenanceRequired] = useState(device?.maintenanceRequired ?? false);

  const { busy, error, submit } = useSubmit(async () => {
    const body = {
      ...(device ? {} : { projectId }),
      name,
      // An imported inventory's own spelling (AWS, MySQL) stays while the value does.
      provider: provider === device?.provider ? device.providerAsWritten : provider,
      protocols: protocols.map((p) => (device ? (device.protocolsAsWritten[device.protocols.indexOf(p)] ?? p) : p)),
      publicIp,
      privateIp,
      urlPort,
      accessType,
      tags: tags.split(/[\s,]+/).filter((t) => t !== ''),
      // Set on an existing device (not part of the inventory a new one is created from).
      ...(device ? { maintenanceRequired } : {}),
    };
    const saved = device ? await api<Device>('PATCH', `/devices/${device.id}`, body) : await api<Device>('POST', '/devices', body);
    onSaved(saved);
  });

  const toggle = (p: string) => setProtocols((ps) => (ps.includes(p) ? ps.filter((x) => x !== p) : [...ps, p]));

  return (
    <form className="card form-grid" onSubmit={submit} aria-label={device ? `Edit ${device.name}` : 'New device'}>
      <h2>{device ? `Edit ${device.name}` : 'New device'}</h2>
      {device ? null : (
        <div className={error?.field('projectId') ? 'field invalid' : 'field'}>
          <label htmlFor="device-project">Project</label>
          <select id="device-project" value={projectId} onChange={(e) => setProjectId(e.target.value)}>
            {projects.map((p) => (
              <option key={p.id} value={p.id}>
                {p.name}
              </option>
            ))}
          </select>
          {error?.field('projectId') ? <p className="field-error">Project {error.field('projectId')}</p> : null}
        </div>
      )}
      <Field label="Name" name="name" value={name} onChange={setName} error={error} required autoFocus />
      <div className="field">
        <label htmlFor="device-provider">Provider</label>
        <select id="device-provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
          {PROVIDERS.map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </div>
      <Field
        label="Private IP"
        name="privateIp"
        value={privateIp}
        onChange={setPrivateIp}
        error={error}
        hint="What the gateway dials, when set."
      />
      <Field label="Public IP" name="publicIp" value={publicIp} onChange={setPublicIp} error={error} />
      <Field
        label="URL / port"
        name="urlPort"
        value={urlPort}
        onChange={setUrlPort}
        error={error}
        hint="A port (2222) or a host name with port."
      />
      <fieldset className={error?.field('protocols') ? 'field invalid wide' : 'field wide'}>
        <legend>Protocols</legend>
        <div className="checks">
          {PROTOCOLS.map((p) => (
            <label key={p} className="check">
              <input type="checkbox" checked={protocols.includes(p)} onChange={() => toggle(p)} /> {p}
            </label>
          ))}
        </div>
        {error?.field('protocols') ? <p className="field-error">Protocols {error.field('protocols')}</p> : null}
      </fieldset>
      <div className="field">
        <label htmlFor="device-access">Access type</label>
        <select id="device-access" value={accessType} onChange={(e) => setAccessType(e.target.value)}>
          {ACCESS_TYPES.map((a) => (
            <option key={a}>{a}</option>
          ))}
        </select>
      </div>
      <Field
        label="Tags"
        name="tags"
        value={tags}
        onChange={setTags}
        error={error}
        hint={
          <>
            Separated by spaces. A <code>gateway-&lt;segment&gt;</code> tag means only that segment&apos;s gateways reach the device.
          </>
        }
      />
      {device ? (
        <label className="check field wide">
          <input type="checkbox" checked={maintenanceRequired} onChange={(e) => setMaintenanceRequired(e.target.checked)} /> Require
          maintenance windows
          <span className="hint"> (then nobody, administrators included, reaches it outside an approved window)</span>
        </label>
      ) : null}
      <FormEnd error={error} busy={busy} label={device ? 'Save' : 'Create device'} busyLabel="Saving…" onCancel={onCancel} />
    </form>
  );
}
