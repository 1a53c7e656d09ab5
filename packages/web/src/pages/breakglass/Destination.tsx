import type { BreakGlassSettingsView } from '@gatehouse/api';
import { useState } from 'react';
import type { ApiError } from '../../api.js';
import { destinationChanged, formOf, fromConnectionString, MASK, type Form } from './form.js';
import { fieldOf, secretHint, type SectionProps } from './section.js';

/** The remote storage provider: S3 (or S3-compatible) or Azure Blob. */
export function ProviderChoice({ form, set, readOnly }: SectionProps) {
  return (
    <fieldset className="field" disabled={readOnly}>
      <legend>Remote storage provider</legend>
      <div className="checks">
        {(['s3', 'blob'] as const).map((p) => (
          <label key={p} className="check">
            <input type="radio" name="provider" checked={form.provider === p} onChange={() => set('provider')(p)} />{' '}
            {p === 's3' ? 'S3' : 'Azure Blob'}
          </label>
        ))}
      </div>
    </fieldset>
  );
}

/**
 * Where the file goes and with which credentials: the provider's own fields, and for Blob a
 * pasted connection string (kept here, never stored, cleared when the saved settings change).
 */
export function Destination(
  props: SectionProps & { settings: BreakGlassSettingsView['settings']; update: (patch: Partial<Form>) => void },
) {
  const { form, readOnly, settings, update } = props;
  const [connectionString, setConnectionString] = useState('');
  const [shown, setShown] = useState(settings);
  if (settings !== shown) {
    setShown(settings);
    setConnectionString('');
  }
  const field = fieldOf(props);
  const moved = destinationChanged(form, settings ? formOf(settings) : null);
  /** A stored secret that would follow a changed destination: the API refuses it, the page says so first. */
  const destinationSecret = (key: 'secretAccessKey' | 'accountKey' | 'sasToken', hint: string) =>
    moved && form[key] === MASK ? 'Enter the secret again: the destination changed.' : hint;
  const protocol = (
    <SelectField
      label="Protocol"
      name="protocol"
      value={form.protocol}
      onChange={props.set('protocol')}
      disabled={readOnly}
      error={props.error}
    />
  );
  const httpWarning =
    form.protocol === 'http' ? (
      <p className="warning wide" role="alert" data-warning="http">
        HTTP is not encrypted: anyone on the network path can read and change the requests. Use HTTPS unless this is a local test server.
      </p>
    ) : null;

  return form.provider === 's3' ? (
    <div className="form-grid even" data-provider="s3">
      {field('Access key ID', 'accessKeyId', {
        hint:
          form.credentials === 'default'
            ? 'Not used: the server’s own AWS identity is chosen below.'
            : 'Required, with the secret key. The server’s own AWS identity is a separate, explicit choice below.',
        disabled: readOnly || form.credentials === 'default',
      })}
      {field('Secret key', 'secretAccessKey', {
        type: 'password',
        hint: destinationSecret('secretAccessKey', secretHint),
        autoComplete: 'new-password',
        disabled: readOnly || form.credentials === 'default',
      })}
      {field('Bucket name', 'bucket', { required: true })}
      {protocol}
      {httpWarning}
      {field('URL', 'url', { hint: 'The S3 endpoint (host[:port]); empty for AWS.', placeholder: 's3.example.com' })}
      {field('Region', 'region', { placeholder: 'us-east-1' })}
    </div>
  ) : (
    <div className="form-grid even" data-provider="blob">
      <div className="field wide">
        <label htmlFor="connection-string">Paste an Azure connection string</label>
        {/* It holds the account key or SAS: masked like them. */}
        <input
          id="connection-string"
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={connectionString}
          disabled={readOnly}
          placeholder="BlobEndpoint=…;SharedAccessSignature=…"
          onChange={(e) => {
            setConnectionString(e.target.value);
            const fields = fromConnectionString(e.target.value);
            if (fields) update(fields);
          }}
        />
        <p className="hint">
          The portal&apos;s SAS connection string, or one with the account key. It replaces the Blob fields below and under Advanced; it is
          not stored itself.
        </p>
      </div>
      {field('Storage account name', 'accountName', { hint: 'May be left empty with a blob endpoint: it names the account.' })}
      {field('Key', 'accountKey', {
        type: 'password',
        hint: destinationSecret('accountKey', `The account key, or leave it empty and give a SAS token. ${secretHint}`),
        autoComplete: 'new-password',
      })}
      {field('SAS token', 'sasToken', {
        type: 'password',
        hint: destinationSecret(
          'sasToken',
          `Instead of the key (least privilege): a container SAS with create and write only. A new one replaces a saved key. ${secretHint}`,
        ),
        autoComplete: 'new-password',
      })}
      {field('Container name', 'container', { required: true })}
      {protocol}
      {httpWarning}
      {field('Endpoint suffix', 'endpointSuffix', { placeholder: 'core.windows.net' })}
    </div>
  );
}

function SelectField(props: {
  label: string;
  name: string;
  value: string;
  onChange: (v: string) => void;
  disabled: boolean;
  error: ApiError | null;
}) {
  const message = props.error?.field(props.name);
  return (
    <div className={message ? 'field invalid' : 'field'}>
      <label htmlFor={`bg-${props.name}`}>{props.label}</label>
      <select id={`bg-${props.name}`} value={props.value} disabled={props.disabled} onChange={(e) => props.onChange(e.target.value)}>
        <option value="https">HTTPS</option>
        <option value="http">HTTP</option>
      </select>
      {message ? <p className="field-error">{`${props.label} ${message}`}</p> : null}
    </div>
  );
}
