import { FieldError, fieldOf, secretHint, type SectionProps } from './section.js';

/** What the encryption choice means, said plainly next to it. */
function sealedBy(encryption: string, recipients: number): string {
  if (encryption === 'passphrase') return 'Sealed with age and the passphrase below: whoever knows it can open the file with age -d.';
  if (encryption === 'none') return 'Not encrypted: whoever can read the bucket or container can read every credential in the file.';
  return recipients === 0
    ? 'Sealed with age to the recipients below: add at least one public key.'
    : `Sealed with age to ${recipients} recipient${recipients === 1 ? '' : 's'}: only the holders of the matching keys can open the file.`;
}

/** What seals the file: age to recipients' public keys, age with a passphrase, or (when the server allows it) nothing. */
export function Sealing(props: SectionProps & { plaintextAllowed: boolean }) {
  const { form, set, error, readOnly, plaintextAllowed } = props;
  const field = fieldOf(props);
  const recipients = form.ageRecipients.split(/\s+/).filter((r) => r !== '').length;
  return (
    <fieldset className="form-grid even" aria-label="What seals the file">
      <div className="field">
        <label htmlFor="encryption">Encryption</label>
        <select id="encryption" value={form.encryption} disabled={readOnly} onChange={(e) => set('encryption')(e.target.value)}>
          <option value="age">age, to the recipients</option>
          <option value="passphrase">age, with a passphrase</option>
          <option value="none" disabled={!plaintextAllowed && form.encryption !== 'none'}>
            {plaintextAllowed ? 'none (not recommended)' : 'none (not allowed: only the server setting breakglassAllowPlaintext allows it)'}
          </option>
        </select>
        <FieldError error={error} name="encryption" label="Encryption" />
      </div>
      <p className={form.encryption === 'none' ? 'warning sealed-by' : 'notice sealed-by'} data-testid="sealed-by">
        {sealedBy(form.encryption, recipients)}
      </p>
      {form.encryption === 'passphrase' ? field('Passphrase', 'passphrase', { type: 'password', hint: secretHint }) : null}
      {form.encryption === 'age'
        ? field('Age recipients', 'ageRecipients', {
            multiline: true,
            hint: 'One age1… public key per line: the holders who can open the file with age -d.',
          })
        : null}
    </fieldset>
  );
}
