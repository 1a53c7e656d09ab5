import type { BreakGlassSettingsView } from '@gatehouse/api';

/** The manifest signing key's fingerprint and public key, to hand to the holders. */
export function SigningKey({ signingKey }: { signingKey: BreakGlassSettingsView['signingKey'] }) {
  return (
    <>
      <h2>Manifest signing key</h2>
      <p className="hint">
        Each run writes a manifest signed with this key; give the public key to the holders so they can check the file.
      </p>
      <div className="signing-key">
        <span className="mono small">{signingKey.fingerprint}</span>
        <pre className="mono copyable">{signingKey.publicKeyPem}</pre>
        <button type="button" onClick={() => void navigator.clipboard?.writeText(signingKey.publicKeyPem)}>
          Copy
        </button>
      </div>
    </>
  );
}
