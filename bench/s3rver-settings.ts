/**
 * Break-glass settings for an s3rver, shared by the benchmarks and the e2e tests (which
 * import it through `test/support/breakglass-e2e.ts`). No side effects on import.
 */

/**
 * The break-glass settings that export to an s3rver bucket at `endpoint` (host:port; s3rver
 * takes any signature made with the key pair `S3RVER` / `S3RVER`, path style), sealed to the
 * age `recipient`. The bucket is `breakglass` unless given; `prefix` only when given.
 */
export function s3rverBreakGlassSettings(opts: { endpoint: string; recipient: string; bucket?: string; prefix?: string }) {
  return {
    provider: 's3',
    executeTime: '03:00',
    timeZone: 'UTC',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    bucket: opts.bucket ?? 'breakglass',
    protocol: 'http',
    url: opts.endpoint,
    pathStyle: true,
    ...(opts.prefix === undefined ? {} : { prefix: opts.prefix }),
    ageRecipients: [opts.recipient],
  };
}
