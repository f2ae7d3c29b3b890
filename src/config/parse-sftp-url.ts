export interface SftpUrl {
  username?: string;
  host: string;
  port?: number;
  /** Remote path: absolute, or relative to the login folder when written as `/~/rel`. */
  path: string;
}

/**
 * `sftp://user@host:port/path` → parts. `sftp://h/~/in` names `in` below the login
 * folder. A password in the URL is refused: secrets come from the environment.
 */
export function parseSftpUrl(text: string): SftpUrl | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `expected a URL such as sftp://user@host:22/path, got ${JSON.stringify(text)}`;
  }
  if (url.protocol !== 'sftp:') return `expected an sftp:// URL, got ${JSON.stringify(text)}`;
  if (url.password)
    return 'a password in the URL is not allowed: put it in an environment variable and name it in password_env';
  if (!url.hostname) return `the URL ${JSON.stringify(text)} names no host`;
  const decodedPath = decodeURIComponent(url.pathname);
  const path = decodedPath.startsWith('/~/')
    ? decodedPath.slice(3) || '.'
    : decodedPath === '/~'
      ? '.'
      : decodedPath;
  return {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    ...(url.port ? { port: Number(url.port) } : {}),
    path: path === '' ? '/' : path,
  };
}
