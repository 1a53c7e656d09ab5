import { Fragment, useEffect, useId, useState, type FormEvent, type ReactNode } from 'react';
import { ApiError } from './api.js';

/** A labelled input with its error (from the API's issues) right under it. */
export function Field(props: {
  label: string;
  name: string;
  value: string;
  onChange: (value: string) => void;
  error?: ApiError | null | undefined;
  type?: 'text' | 'password' | 'search' | 'number';
  hint?: ReactNode;
  required?: boolean;
  autoComplete?: string;
  autoFocus?: boolean;
  inputMode?: 'numeric' | 'text';
  multiline?: boolean;
  placeholder?: string;
  disabled?: boolean;
  /** The id of a <datalist> of suggestions. */
  list?: string;
}) {
  const id = useId();
  const message = props.error?.field(props.name);
  const common = {
    id,
    name: props.name,
    value: props.value,
    required: props.required,
    autoFocus: props.autoFocus,
    placeholder: props.placeholder,
    disabled: props.disabled,
    'aria-invalid': message ? true : undefined,
    'aria-describedby': message ? `${id}-error` : props.hint ? `${id}-hint` : undefined,
  } as const;
  return (
    <div className={message ? 'field invalid' : 'field'}>
      <label htmlFor={id}>{props.label}</label>
      {props.multiline ? (
        <textarea {...common} rows={4} spellCheck={false} onChange={(e) => props.onChange(e.target.value)} />
      ) : (
        <input
          {...common}
          type={props.type ?? 'text'}
          autoComplete={props.autoComplete ?? 'off'}
          inputMode={props.inputMode}
          list={props.list}
          spellCheck={false}
          onChange={(e) => props.onChange(e.target.value)}
        />
      )}
      {message ? (
        <p className="field-error" id={`${id}-error`} role="alert">
          {props.label} {message}
        </p>
      ) : props.hint ? (
        <p className="hint" id={`${id}-hint`}>
          {props.hint}
        </p>
      ) : null}
    </div>
  );
}

/** The error of a whole form or page: the API's message, which says what to do. */
export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : 'Something went wrong. Reload the page.';
  return (
    <div className="error-note" role="alert">
      {message}
    </div>
  );
}

/** What an empty list says, and what to do next. */
export function Empty({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <p className="empty-title">{title}</p>
      {children ? <div className="empty-next">{children}</div> : null}
    </div>
  );
}

/** A coloured status word; `status` picks the colour (online, succeeded, failed, running…), `label` the text. */
export function StatusBadge({ status, label, title }: { status: string; label?: string; title?: string | null }) {
  return (
    <span className={`badge badge-${status}`} title={title ?? undefined}>
      {label ?? status}
    </span>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <header className="page-header">
      <h1>{title}</h1>
      {children ? <div className="page-actions">{children}</div> : null}
    </header>
  );
}

/** A relative time ("12 s ago") with the exact time as its tooltip. */
export function Ago({ at }: { at: string | null }) {
  if (!at) return <span className="muted">never</span>;
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000));
  const text = seconds < 60 ? `${seconds} s ago` : seconds < 3600 ? `${Math.round(seconds / 60)} min ago` : new Date(at).toLocaleString();
  return (
    <time dateTime={at} title={new Date(at).toLocaleString()}>
      {text}
    </time>
  );
}

/**
 * A form's submit: busy while it runs, and the failure as an ApiError (its issues name the
 * fields). `submit` is the form's onSubmit handler.
 */
export function useSubmit(run: () => Promise<void>) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    run()
      .catch((err: unknown) =>
        setError(err instanceof ApiError ? err : new ApiError(0, 'INTERNAL', err instanceof Error ? err.message : String(err))),
      )
      .finally(() => setBusy(false));
  };
  return { busy, error, setError, submit };
}

/** A form's error that names no field, then its buttons. */
export function FormEnd({
  error,
  busy,
  label,
  busyLabel,
  onCancel,
}: {
  error: ApiError | null;
  busy: boolean;
  label: string;
  busyLabel: string;
  onCancel?: () => void;
}) {
  return (
    <>
      <ErrorNote error={error?.issues.length ? null : error} />
      <div className="actions wide">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? busyLabel : label}
        </button>
        {onCancel ? (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        ) : null}
      </div>
    </>
  );
}

/**
 * The value once it has not changed for `ms`: a search box does not ask the server on every
 * key. An object value is compared by its JSON, so a new but equal object changes nothing.
 */
export function useDebounced<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  const key = JSON.stringify(value);
  useEffect(() => {
    const t = setTimeout(() => setSettled((old) => (JSON.stringify(old) === key ? old : value)), ms);
    return () => clearTimeout(t);
  }, [key, ms]);
  return settled;
}

/** Placeholder rows while a table's first page loads: the table keeps its height, nothing jumps. */
export function SkeletonRows({ rows, columns, loading }: { rows: number; columns: number; loading: boolean }) {
  if (!loading) return null;
  return (
    <>
      {Array.from({ length: rows }, (_, i) => (
        <tr key={`skeleton-${i}`} className="skeleton" aria-hidden="true">
          <td colSpan={columns}>&nbsp;</td>
        </tr>
      ))}
    </>
  );
}

/** Previous / next for a list paged on the server; nothing when it fits on one page. */
export function Pager({
  offset,
  total,
  pageSize,
  onChange,
}: {
  offset: number;
  total: number;
  pageSize: number;
  onChange: (offset: number) => void;
}) {
  if (total <= pageSize) return null;
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" onClick={() => onChange(Math.max(0, offset - pageSize))} disabled={offset === 0}>
        Previous
      </button>
      <span>
        {(offset + 1).toLocaleString()}–{Math.min(offset + pageSize, total).toLocaleString()} of {total.toLocaleString()}
      </span>
      <button type="button" onClick={() => onChange(offset + pageSize)} disabled={offset + pageSize >= total}>
        Next
      </button>
    </nav>
  );
}

/**
 * The offset of a paged list that goes back to the first page when the filters change, in
 * the same render: no request goes out for the old page with the new filters.
 */
export function usePageOffset(filters: unknown): [number, (offset: number) => void] {
  const key = JSON.stringify(filters);
  const [at, setAt] = useState({ key, offset: 0 });
  return [at.key === key ? at.offset : 0, (offset: number) => setAt({ key, offset })];
}

/** One column of a `DataTable`: its heading, and what a row shows in it. */
export interface Column<T> {
  header: ReactNode;
  cell: (row: T) => ReactNode;
  className?: string;
}

/**
 * A table of `rows` (scrolling sideways on a narrow screen), one `<tr>` per row keyed by
 * `rowKey`, with `after` drawing any further rows that belong to one (a pinned next key).
 */
export function DataTable<T>({
  label,
  columns,
  rows,
  rowKey,
  after,
}: {
  label: string;
  columns: readonly (Column<T> | false)[];
  rows: readonly T[];
  rowKey: (row: T) => string;
  after?: (row: T) => ReactNode;
}) {
  const shown = columns.filter((c): c is Column<T> => c !== false);
  return (
    <div className="table-wrap">
      <table className="data" aria-label={label}>
        <thead>
          <tr>
            {shown.map((c, i) => (
              <th key={i} className={c.className}>
                {c.header}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <Fragment key={rowKey(row)}>
              <tr>
                {shown.map((c, i) => (
                  <td key={i} className={c.className}>
                    {c.cell(row)}
                  </td>
                ))}
              </tr>
              {after?.(row)}
            </Fragment>
          ))}
        </tbody>
      </table>
    </div>
  );
}
