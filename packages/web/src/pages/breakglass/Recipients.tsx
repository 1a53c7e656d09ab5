import { fieldOf, type SectionProps } from './section.js';

/** The age recipients the file is sealed to. */
export function Recipients(props: SectionProps) {
  return (
    <div className="form-grid">
      {fieldOf(props)('Age recipients', 'ageRecipients', {
        multiline: true,
        hint: 'One age1… public key per line: the holders who can open the file with age -d.',
      })}
    </div>
  );
}
