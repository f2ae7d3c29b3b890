export { consoleLevelFor, createLogger, type CreateLoggerOptions, type Logger } from './create-logger.js';
export { maskSecretFields } from './mask-secret-fields.js';
export { redactSecrets } from './redact-secrets.js';
