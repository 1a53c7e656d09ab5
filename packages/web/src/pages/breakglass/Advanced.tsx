import { FieldError, fieldOf, type SectionProps } from './section.js';

/** The folded-away settings: prefix, addressing, CA bundle and the alert webhook. */
export function Advanced(props: SectionProps) {
  const { form, set, error, readOnly } = props;
  const field = fieldOf(props);
  return (
    <details className="advanced">
      <summary>Advanced</summary>
      <div className="form-grid even">
        {field('Object name prefix', 'prefix', { hint: 'The "folder" in the bucket; the writer policy is scoped to it.' })}
        {form.provider === 's3' ? (
          <>
            <label className="check field">
              <input type="checkbox" checked={form.pathStyle} disabled={readOnly} onChange={(e) => set('pathStyle')(e.target.checked)} />{' '}
              Path-style addressing (most S3-compatible servers)
            </label>
            <label className="check field">
              <input
                type="checkbox"
                checked={form.credentials === 'default'}
                disabled={readOnly}
                onChange={(e) => set('credentials')(e.target.checked ? 'default' : 'keys')}
              />{' '}
              Use the server’s own AWS identity (environment or instance role) instead of an access key: AWS endpoints over HTTPS only
            </label>
            <FieldError error={error} name="credentials" label="Credentials" />
          </>
        ) : (
          <>
            {field('Blob endpoint', 'blobEndpoint', {
              hint: 'A full endpoint URL instead of the account and suffix (Azurite, private link).',
            })}
          </>
        )}
        {field('CA bundle (PEM)', 'caBundle', { multiline: true, hint: 'Extra certificates to trust for a private endpoint.' })}
        {field('Alert webhook URL', 'alertWebhookUrl', {
          type: 'password',
          autoComplete: 'new-password',
          hint: 'Called when a run fails or the file is stale. A secret (a chat webhook URL lets anyone post): shown as a fixed mask when set; type a new one to replace it.',
        })}
      </div>
    </details>
  );
}
