export { assignSheetNames, cleanSheetName, INDEX_SHEET, PEM_SHEET, MAX_SHEET_NAME } from './sheet-names.js';
export {
  writeConnectionWorkbook,
  formatExtraCredential,
  CONNECTION_COLUMNS,
  PEM_COLUMNS,
  INDEX_COLUMNS,
  type BreakGlassSource,
  type ConnectionRow,
  type PemKeyRow,
  type ProjectSummary,
  type WorkbookCounts,
} from './workbook.js';
export { sealStream, isAgeRecipient, identityToRecipient, type Sealing } from './seal.js';
export {
  signManifest,
  verifyManifest,
  generateSigningKey,
  signingKeyFingerprint,
  canonicalJson,
  MANIFEST_FORMAT,
  type Manifest,
  type SignedManifest,
  type ManifestCheck,
  type SigningKeyPair,
} from './manifest.js';
export {
  exportBreakGlass,
  exportNames,
  partialExport,
  type ExportNames,
  type ExportOptions,
  type ExportResult,
  type PartialExport,
} from './export.js';
export {
  testStages,
  TargetError,
  PartsAbortRefused,
  networkReason,
  type StorageTarget,
  type ObjectRead,
  type StageResult,
  type TestReport,
  type TestStage,
} from './targets/target.js';
export type { S3TargetConfig } from './targets/s3.js';
export type { BlobTargetConfig } from './targets/blob.js';
export { parseConnectionString, normalizeSuffix } from './targets/connection-string.js';
export {
  breakGlassSettings,
  s3Settings,
  blobSettings,
  secretSettingKeys,
  isTimeZone,
  type BreakGlassSettings,
  type SecretSettingKey,
} from './settings.js';
export {
  destinationChanges,
  destinationSecretKeys,
  isAwsEndpoint,
  isLoopbackHost,
  plainHttpWarning,
  storageEndpoint,
} from './destination.js';
export {
  checkHost,
  hostOf,
  forbiddenAddressKind,
  guardedHttpAgent,
  guardedHttpsAgent,
  ForbiddenAddressError,
  FORBIDDEN_ADDRESS,
  type AddressPolicy,
} from './address-guard.js';
export { readMountedValues, parseMountedConfig, fingerprintValues, mountedKeys, MountedConfigError } from './mounted-config.js';
export { leastPrivilegePolicies, type PolicySet } from './policy.js';
export { openExport, OpenError, type OpenedExport, type OpenOptions, type ConnectionRecord, type PemRecord } from './reader.js';
export { inventorySource, type InventoryReader, type SourceDevice, type SourceAccount } from './inventory-source.js';
