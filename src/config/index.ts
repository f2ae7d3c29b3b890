export type * from './config-types.js';
export {
  type BuildMirrorConfigOptions,
  buildMirrorConfig,
  type Env,
  loadCopierConfig,
  loadFetcherConfig,
  loadMirrorConfig,
} from './load-config.js';
export { formatDuration, parseDuration } from './parse-duration.js';
export { formatSize, parseSize } from './parse-size.js';
export { Secret } from './secret.js';
export { collectSecrets } from './collect-secrets.js';
export { isInside } from './semantic-rules.js';
export { fetcherKeys } from './fetcher-schema.js';
export { copierKeys } from './copier-schema.js';
export { isSftpUrlText, mirrorKeys } from './mirror-schema.js';
export type { ConfigProblem } from './semantic-rules.js';
