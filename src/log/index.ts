export { consoleLevelFor, createLogger, type CreateLoggerOptions, type Logger } from './create-logger.js';
export { redactSecrets } from './redact-secrets.js';
